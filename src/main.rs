fn main() -> std::process::ExitCode {
    dealflow::cli::run()
}
