fn main() -> std::process::ExitCode {
    runtime::run::<delivery::Delivery>()
}
