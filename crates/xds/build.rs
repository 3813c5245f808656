//! Compiles the resource and debug protos with protox (pure Rust, no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/weft/xds/v1/authz.proto",
        "proto/weft/xds/v1/resources.proto",
        "proto/weft/xds/v1/debug.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
