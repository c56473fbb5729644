fn main() -> std::process::ExitCode {
    runtime::run::<workflow::Workflow>()
}
