//! Generates KEDA's external scaler messages and service (server for the scaler, client for
//! the tests and the local run's KEDA emulation) from `proto/externalscaler.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/externalscaler.proto";
    println!("cargo:rerun-if-changed={proto}");
    // protox compiles the .proto in Rust: no `protoc` on the build machine.
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
