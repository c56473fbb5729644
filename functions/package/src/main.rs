fn main() -> std::process::ExitCode {
    runtime::run::<package::Package>()
}
