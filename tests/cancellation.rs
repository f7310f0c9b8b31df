//! Requests cut off at any moment (clients hanging up, timeouts) never leave a pooled
//! connection inside a transaction: the next borrower would run in it, with another request's
//! role settings, and its writes would never commit.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of PostgreSQL that holds every answer back for `delay`, so that a
/// request is cut off while its BEGIN is in flight far more often than on bare loopback.
async fn slow_proxy(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    tokio::time::sleep(delay).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr.to_string()
}

#[tokio::test]
async fn a_request_cut_off_during_its_begin_leaves_no_transaction_in_the_pool() {
    let url = fresh_database().await;
    let (user, rest) = url.strip_prefix("postgres://").unwrap().split_once('@').unwrap();
    let (hostport, db) = rest.split_once('/').unwrap();
    // Every answer from PostgreSQL arrives 50 ms late, so the BEGIN is surely in flight when
    // the caller gives up after 10 ms.
    let proxy = slow_proxy(hostport.to_string(), Duration::from_millis(50)).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false) // as the server's pool: no ping before the BEGIN
        .connect(&format!("postgres://{user}@{proxy}/{db}"))
        .await
        .unwrap();
    let scope = cityos::db::scope::DbScope {
        tenant_id: Some(uuid::Uuid::parse_str(FASHIONISTA).unwrap()),
        user_id: None,
        all_tenants: false,
    };
    let cut = tokio::time::timeout(Duration::from_millis(10), cityos::db::scope::begin(&pool, &scope)).await;
    assert!(cut.is_err(), "the begin was cut off");
    // The only connection of the pool, as the next borrower gets it: outside any transaction,
    // without the cut-off request's role.
    let mut conn = pool.acquire().await.unwrap();
    let role: String = sqlx::query_scalar("SELECT current_setting('role')")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        role, "none",
        "the next borrower runs inside the cut-off request's transaction"
    );
    // Seen from outside: the backend of that connection is idle, not idle in a transaction.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let direct = sqlx::PgPool::connect(&url).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
        .bind(pid)
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(
        state, "idle",
        "the pooled connection is still inside a transaction"
    );
}
