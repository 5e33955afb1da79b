//! Generates the gRPC transport's protobuf types and tonic service from
//! `proto/raft.proto`, with protox as the compiler (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/raft.proto");
    let fds = protox::compile(["raft.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
