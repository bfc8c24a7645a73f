//! Generates the certificate service's gRPC code (proto/weft/ca/v1/ca.proto) with a vendored
//! protoc, so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/weft/ca/v1/ca.proto"],
        &["proto"],
    )?;
    Ok(())
}
