fn main() -> std::process::ExitCode {
    cityos::cli::main()
}
