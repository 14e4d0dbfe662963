//! `tessera-admin`: operator commands against the controllers (any of them;
//! requests follow the leader).
//!
//! ```text
//! tessera-admin --controllers 127.0.0.1:7001,127.0.0.1:7002 summary
//! tessera-admin --controllers ... controllers add --id 4 --addr 127.0.0.1:7004
//! tessera-admin --controllers ... controllers remove --id 2
//! tessera-admin --controllers ... nodes list | decommission dn3 | fail dn3 | recover dn3
//! ```

use clap::{Parser, Subcommand};
use tessera_proto::control_client::{ControlClient, RetryPolicy};
use tessera_proto::pb;

#[derive(Parser)]
#[command(name = "tessera-admin", version, about = "Operator commands for a Tessera cluster")]
struct Cli {
    /// Controller addresses, comma-separated host:port.
    #[arg(long, env = "TESSERA_CONTROLLERS", value_delimiter = ',', required = true)]
    controllers: Vec<String>,
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
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = ControlClient::new(cli.controllers, RetryPolicy::default());
    match cli.command {
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
