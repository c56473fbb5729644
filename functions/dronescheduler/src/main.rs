fn main() -> std::process::ExitCode {
    runtime::run::<dronescheduler::DroneScheduler>()
}
