//! The command line: `serve` (default), `migrate`, `seed`, `create-user`, `config check`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{shutdown_signal, Application};
use crate::config::Config;
use crate::db::{self, Database};

/// Exit code for configuration problems.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "cityos",
    version,
    about = "CityOS Orchestrator: Payload-compatible content, tenancy and integration control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve HTTP (default). Without DATABASE_URL an embedded PostgreSQL is started under CITYOS_DATA_DIR.
    Serve,
    /// Apply pending migrations (a no-op when the schema is current).
    Migrate,
    /// Load data: the demo hierarchy and content, or the benchmark data set.
    Seed {
        /// The seed guide's hierarchy, two tenants with content and a super admin (default).
        #[arg(long, conflicts_with = "bench")]
        demo: bool,
        /// 50 tenants with 400 pages each, for benchmarks (loads the demo data first).
        #[arg(long)]
        bench: bool,
    },
    /// Create a local user that can sign in with email and password.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Global role: super_admin, platform_operator or support_agent.
        #[arg(long, default_value = "super_admin")]
        role: String,
        /// The password; read from standard input when absent.
        #[arg(long)]
        password: Option<String>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

/// Parses the command line, runs the command, maps failures to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    crate::telemetry::init(&config.log_level, config.log_format);
    for name in &config.generated_secrets {
        tracing::warn!(
            variable = name,
            path = %config.data_dir.join("secrets.env").display(),
            "secret not set; generated one for development"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let app = Application::build(config).await?;
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate => {
            let database = Database::open(&config).await?;
            let result = db::migrate(&database.pool).await;
            database.close().await;
            result?;
            println!("migrations applied");
        }
        Command::Seed { bench, .. } => {
            let database = Database::open(&config).await?;
            let result = async {
                db::migrate(&database.pool).await?;
                let report = db::seed::demo(
                    &database.pool,
                    &config.seed_admin_email,
                    config.seed_admin_password.expose(),
                )
                .await?;
                if let Some(email) = &report.admin_created {
                    println!("super admin created: {email} (password from SEED_ADMIN_PASSWORD, default cityos-admin)");
                }
                println!("demo data loaded");
                if bench {
                    db::seed::bench(&database.pool).await?;
                    println!("benchmark data loaded (50 tenants, 20,000 pages)");
                }
                anyhow::Ok(())
            }
            .await;
            database.close().await;
            result?;
        }
        Command::CreateUser {
            email,
            role,
            password,
        } => {
            if !matches!(
                role.as_str(),
                "super_admin" | "platform_operator" | "support_agent"
            ) {
                eprintln!("config error: --role must be super_admin, platform_operator or support_agent");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            if password.chars().count() < crate::auth::password::MIN_LENGTH {
                eprintln!(
                    "error: the password must have at least {} characters",
                    crate::auth::password::MIN_LENGTH
                );
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let database = Database::open(&config).await?;
            let result = async {
                db::migrate(&database.pool).await?;
                db::seed::create_user(&database.pool, &email, &password, &role).await
            }
            .await;
            database.close().await;
            if result? {
                println!("user created: {}", email.to_lowercase());
            } else {
                eprintln!("error: a user with email {} already exists", email.to_lowercase());
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            println!("configuration is valid");
            for (name, value) in config.describe() {
                println!("{name}={value}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
    }
    let mut buf = String::new();
    stdin.read_to_string(&mut buf)?;
    Ok(buf.lines().next().unwrap_or("").to_string())
}
