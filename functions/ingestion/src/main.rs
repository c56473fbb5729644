fn main() -> std::process::ExitCode {
    runtime::run::<ingestion::Ingestion>()
}
