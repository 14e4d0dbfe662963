//! `tessera-admin`: operator commands against the controllers (any of them;
//! requests follow the leader).
//!
//! ```text
//! tessera-admin --controllers 127.0.0.1:7001,127.0.0.1:7002 summary
//! tessera-admin --controllers ... controllers add --id 4 --addr 127.0.0.1:7004
//! tessera-admin --controllers ... controllers remove --id 2
//! tessera-admin --controllers ... nodes list | decommission dn3 | fail dn3 | recover dn3
//! tessera-admin certs --out data/tls          # cluster CA + one certificate per service
//! tessera-admin --controllers ... users create admin --role admin --password-file pw.txt
//! tessera-admin --controllers ... users list | delete alice
//! tessera-admin --controllers ... tokens create admin --label ci   # prints a bearer token once
//! ```
//!
//! Every command but `certs` talks to the controllers over mutual TLS with
//! the `admin` certificate from `--tls-dir` (or plaintext with `--insecure`).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera_proto::control_client::{ControlClient, RetryPolicy};
use tessera_proto::pb;

#[derive(Parser)]
#[command(name = "tessera-admin", version, about = "Operator commands for a Tessera cluster")]
struct Cli {
    /// Controller addresses, comma-separated host:port.
    #[arg(long, env = "TESSERA_CONTROLLERS", value_delimiter = ',', global = true)]
    controllers: Vec<String>,
    #[command(flatten)]
    tls: tessera_proto::tls::TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cluster summary: nodes by health, replication, controllers.
    Summary,
    /// Controller membership.
    Controllers {
        #[command(subcommand)]
        action: ControllerAction,
    },
    /// Data nodes.
    Nodes {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Create a cluster CA and a certificate and key for each service
    /// (controller, datanode, gateway, admin) in a new directory.
    Certs {
        #[arg(long)]
        out: PathBuf,
        /// Extra DNS names for every certificate (e.g. the hosts' names).
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Gateway accounts.
    Users {
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens.
    Tokens {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    List,
    /// Create a user; the password is read from --password-file, or from
    /// standard input (first line) when that is "-".
    Create {
        username: String,
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long)]
        password_file: PathBuf,
        /// Quota in bytes (0: none).
        #[arg(long, default_value_t = 0)]
        quota_bytes: u64,
        /// Succeed without change if the user already exists.
        #[arg(long)]
        if_missing: bool,
    },
    /// Delete a user with their tokens and files.
    Delete {
        username: String,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Issue an API token for a user and print it (shown only this once).
    Create {
        username: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
    List {
        username: String,
    },
}

#[derive(Subcommand)]
enum ControllerAction {
    List,
    /// Add a controller; start it first with no --peers so it waits to be added.
    Add {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        addr: String,
    },
    /// Remove a controller from the cluster.
    Remove {
        #[arg(long)]
        id: u64,
    },
}

#[derive(Subcommand)]
enum NodeAction {
    List,
    /// Drain the node's replicas elsewhere, then mark it removed.
    Decommission {
        node_id: String,
    },
    /// Simulate a crash of the node.
    Fail {
        node_id: String,
    },
    /// End a simulated failure.
    Recover {
        node_id: String,
    },
}

fn print_controllers(controllers: &[pb::ControllerInfo]) {
    println!("{:>4}  {:<22} {:<12} {:>6} {:>12}", "id", "addr", "role", "term", "last_log");
    for c in controllers {
        println!("{:>4}  {:<22} {:<12} {:>6} {:>12}", c.id, c.addr, c.role, c.term, c.last_log_index);
    }
}

fn print_nodes(nodes: &[pb::NodeInfo]) {
    println!("{:<10} {:<22} {:<16} {:>14} {:>14} {:>8}", "node", "addr", "health", "capacity", "free", "chunks");
    for n in nodes {
        println!(
            "{:<10} {:<22} {:<16} {:>14} {:>14} {:>8}",
            n.node_id,
            format!("{}:{}", n.host, n.grpc_port),
            n.health,
            n.capacity_bytes,
            n.free_bytes,
            n.chunks
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tessera_proto::shutdown::exit_status(run(Cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Certs { out, names } = &cli.command {
        let made = tessera_proto::tls::generate(out, &tessera_proto::tls::ROLES, names)?;
        for file in made.files {
            println!("{}", file.display());
        }
        return Ok(());
    }
    anyhow::ensure!(!cli.controllers.is_empty(), "--controllers (or TESSERA_CONTROLLERS) is required");
    let tls = cli.tls.load("admin")?;
    tessera_proto::tls::install(tls.as_ref());
    let client = ControlClient::new(cli.controllers, RetryPolicy::default());
    match cli.command {
        Command::Certs { .. } => {}
        Command::Users { action } => users(&client, action).await?,
        Command::Tokens { action } => tokens(&client, action).await?,
        Command::Summary => {
            let s = client
                .call(|mut c| async move { c.get_cluster_summary(pb::GetClusterSummaryRequest {}).await })
                .await?;
            println!("leader: {}   files: {}   replication: {}", s.leader_id, s.files, s.replication);
            println!(
                "chunks: {} total, {} fully replicated, {} under-replicated, {} lost",
                s.chunks_total, s.chunks_fully_replicated, s.chunks_under_replicated, s.chunks_lost
            );
            println!("nodes by health: {:?}", s.nodes_by_health);
            println!("capacity: {} bytes, used {} bytes", s.capacity_bytes, s.used_bytes);
            print_controllers(&s.controllers);
        }
        Command::Controllers { action } => {
            let controllers = match action {
                ControllerAction::List => {
                    client
                        .call(|mut c| async move { c.get_cluster_summary(pb::GetClusterSummaryRequest {}).await })
                        .await?
                        .controllers
                }
                ControllerAction::Add { id, addr } => {
                    client
                        .call(|mut c| {
                            let addr = addr.clone();
                            async move { c.add_controller(pb::AddControllerRequest { id, addr }).await }
                        })
                        .await?
                        .controllers
                }
                ControllerAction::Remove { id } => {
                    client
                        .call(|mut c| async move { c.remove_controller(pb::RemoveControllerRequest { id }).await })
                        .await?
                        .controllers
                }
            };
            print_controllers(&controllers);
        }
        Command::Nodes { action } => {
            let nodes = match action {
                NodeAction::List => {
                    client.call(|mut c| async move { c.list_nodes(pb::ListNodesRequest {}).await }).await?.nodes
                }
                NodeAction::Decommission { node_id } => node_action(&client, node_id, Action::Decommission).await?,
                NodeAction::Fail { node_id } => node_action(&client, node_id, Action::Fail).await?,
                NodeAction::Recover { node_id } => node_action(&client, node_id, Action::Recover).await?,
            };
            print_nodes(&nodes);
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Action {
    Decommission,
    Fail,
    Recover,
}

async fn node_action(
    client: &ControlClient,
    node_id: String,
    action: Action,
) -> Result<Vec<pb::NodeInfo>, tonic::Status> {
    let reply = client
        .call(|mut c| {
            let request = pb::NodeActionRequest { node_id: node_id.clone() };
            async move {
                match action {
                    Action::Decommission => c.decommission_node(request).await,
                    Action::Fail => c.simulate_node_failure(request).await,
                    Action::Recover => c.recover_node(request).await,
                }
            }
        })
        .await?;
    Ok(reply.node.into_iter().collect())
}

fn read_password(path: &PathBuf) -> anyhow::Result<String> {
    let text = if path.as_os_str() == "-" {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn print_users(users: &[pb::UserInfo]) {
    println!("{:<20} {:<6} {:>14} {:>14} {:>8}", "user", "role", "quota", "used", "files");
    for u in users {
        println!("{:<20} {:<6} {:>14} {:>14} {:>8}", u.username, u.role, u.quota_bytes, u.used_bytes, u.files);
    }
}

async fn users(client: &ControlClient, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::List => {
            let users = client.call(|mut c| async move { c.list_users(pb::ListUsersRequest {}).await }).await?;
            print_users(&users.users);
        }
        UserAction::Create { username, role, password_file, quota_bytes, if_missing } => {
            let password = read_password(&password_file)?;
            let password_hash = tessera_proto::secrets::hash_password(&password)?;
            let request = pb::CreateUserRequest { username: username.clone(), password_hash, role, quota_bytes };
            match client
                .call(|mut c| {
                    let request = request.clone();
                    async move { c.create_user(request).await }
                })
                .await
            {
                Ok(user) => print_users(&[user]),
                Err(status) if if_missing && status.code() == tonic::Code::AlreadyExists => {
                    println!("user {username} exists");
                }
                Err(status) => return Err(status.into()),
            }
        }
        UserAction::Delete { username } => {
            let reply = client
                .call(|mut c| {
                    let username = username.clone();
                    async move { c.delete_user(pb::DeleteUserRequest { username }).await }
                })
                .await?;
            println!("deleted {username} and {} files", reply.files_deleted);
        }
    }
    Ok(())
}

async fn tokens(client: &ControlClient, action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Create { username, label } => {
            let (secret, token_hash) = tessera_proto::secrets::new_token();
            let request = pb::IssueTokenRequest { username, token_hash, kind: "api".into(), label, expires_at_ms: 0 };
            client
                .call(|mut c| {
                    let request = request.clone();
                    async move { c.issue_token(request).await }
                })
                .await?;
            println!("{secret}");
        }
        TokenAction::List { username } => {
            let reply = client
                .call(|mut c| {
                    let username = username.clone();
                    async move { c.list_tokens(pb::ListTokensRequest { username }).await }
                })
                .await?;
            println!("{:<38} {:<8} {:<24} {:>15}", "id", "kind", "label", "created_ms");
            for t in reply.tokens {
                println!("{:<38} {:<8} {:<24} {:>15}", t.id, t.kind, t.label, t.created_at_ms);
            }
        }
    }
    Ok(())
}
