//! The leader lease and the fence that keeps a deposed leader's work out of the store.
//!
//! One row of `leases` (migration 0050) names the instance that leads and its **epoch**, a
//! fencing token that grows by one at every change of holder. Times are the database's own
//! clock (`clock_timestamp()` on PostgreSQL), so instances whose clocks disagree still agree on
//! when a lease ran out. [`crate::leader`] runs the election on a session of its own; this module
//! has the queries.
//!
//! **The fence.** Whatever the workers commit (an inbox row done, an outbox item claimed for
//! sending, sent or failed, a Matrix event handled) is checked, in the same transaction, against
//! the lease: still held by this instance, under the epoch it acquired, not expired. On
//! PostgreSQL the lease row is read `FOR SHARE`, so an instance taking the lease over waits for
//! such a transaction to end, and every commit after the takeover sees the new epoch and is
//! refused ([`is_fenced`]). On SQLite, which one instance serves, the fence is this process's
//! own knowledge (leading or not). A store that is not run by the election (unit tests,
//! command-line tools) is not fenced at all.

use std::sync::{Arc, RwLock};

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};

/// The lease the leader holds.
pub const LEADER: &str = "leader";

/// The database's "now" in milliseconds since the Unix epoch, per dialect.
macro_rules! db_now {
    (sqlite) => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)"
    };
    (postgres) => {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    };
}

macro_rules! acquire_sql {
    ($d:tt) => {
        concat!(
            "INSERT INTO leases (name, holder, epoch, expires_at, acquired_at)
             VALUES ($1, $2, 1, ",
            db_now!($d),
            " + $3, ",
            db_now!($d),
            ")
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = leases.epoch + 1,
                 expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
             WHERE leases.expires_at < excluded.acquired_at OR leases.holder = excluded.holder
             RETURNING epoch"
        )
    };
}

macro_rules! renew_sql {
    ($d:tt) => {
        concat!(
            "UPDATE leases SET expires_at = ",
            db_now!($d),
            " + $3 WHERE name = $1 AND holder = $2 AND epoch = $4"
        )
    };
}

/// Who may commit workers' results through this store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fence {
    /// Not run by the election (unit tests, tools): nothing is checked.
    Unmanaged,
    /// A standby, or a leader that stepped down: every fenced commit is refused.
    Standby,
    /// The leader: commits go through while `holder` holds the lease under `epoch`.
    Leader { holder: String, epoch: i64 },
}

/// The fence of a store and its clones.
pub(crate) type SharedFence = Arc<RwLock<Fence>>;

/// The lease as stored (for health answers and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub epoch: i64,
    /// Milliseconds until it expires, on the database's clock (negative: expired).
    pub expires_in_ms: i64,
}

/// The error a fenced commit fails with.
fn fenced(why: &str) -> StoreError {
    StoreError::Protocol(format!("{FENCED}: {why}"))
}

const FENCED: &str = "refused: this instance does not hold the leader lease";

/// Whether a store error is the fence refusing a commit (this instance is no longer the leader).
pub fn is_fenced(e: &StoreError) -> bool {
    matches!(e, StoreError::Protocol(m) if m.starts_with(FENCED))
}

impl Store {
    /// Take the lease when it is free or expired, or held under this instance id by an earlier
    /// run (a restart with a fixed `ha.instance_id`: the earlier run is gone, and the new epoch
    /// fences it all the same); the new epoch, or `None` when another instance holds it.
    pub async fn lease_acquire(
        conn: &mut AnyConnection,
        sqlite: bool,
        holder: &str,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = if sqlite {
            acquire_sql!(sqlite)
        } else {
            acquire_sql!(postgres)
        };
        sqlx::query_scalar(sql)
            .bind(LEADER)
            .bind(holder)
            .bind(lease_ms)
            .fetch_optional(conn)
            .await
    }

    /// Push the lease's expiry `lease_ms` past now; `false` when `holder` no longer holds it
    /// under `epoch` (another instance took it over).
    pub async fn lease_renew(
        conn: &mut AnyConnection,
        sqlite: bool,
        holder: &str,
        epoch: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let sql = if sqlite {
            renew_sql!(sqlite)
        } else {
            renew_sql!(postgres)
        };
        let done = sqlx::query(sql)
            .bind(LEADER)
            .bind(holder)
            .bind(lease_ms)
            .bind(epoch)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give the lease up at once (a graceful stop), so a standby takes over without waiting for
    /// it to expire. Does nothing when it is not ours any more.
    pub async fn lease_release(
        conn: &mut AnyConnection,
        holder: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(LEADER)
        .bind(holder)
        .bind(epoch)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The leader lease as stored, if any instance ever held it.
    pub async fn lease_current(&self) -> Result<Option<Lease>, StoreError> {
        let sql = if self.sqlite {
            concat!(
                "SELECT holder, epoch, expires_at - ",
                db_now!(sqlite),
                " AS left_ms FROM leases WHERE name = $1"
            )
        } else {
            concat!(
                "SELECT holder, epoch, expires_at - ",
                db_now!(postgres),
                " AS left_ms FROM leases WHERE name = $1"
            )
        };
        let row = sqlx::query(sql)
            .bind(LEADER)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(Lease {
                holder: r.try_get("holder")?,
                epoch: r.try_get("epoch")?,
                expires_in_ms: r.try_get("left_ms")?,
            })
        })
        .transpose()
    }

    /// Set who may commit workers' results (the election does, at every change).
    pub fn set_fence(&self, fence: Fence) {
        *self.fence.write().unwrap_or_else(|e| e.into_inner()) = fence;
    }

    pub fn fence(&self) -> Fence {
        self.fence.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Inside the caller's transaction: refuse unless this instance leads under its epoch (see
    /// the module docs). On PostgreSQL the lease row stays share-locked until the transaction
    /// ends, so a takeover cannot slip in between this check and the commit.
    pub(crate) async fn check_fence(&self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let (holder, epoch) = match self.fence() {
            Fence::Unmanaged => return Ok(()),
            Fence::Standby => return Err(fenced("standing by")),
            Fence::Leader { holder, epoch } => (holder, epoch),
        };
        if self.sqlite {
            // One instance only (its lock file): nobody else can take the lease, and what this
            // process knows is the whole truth. (A read here would also turn the caller's write
            // into an upgrade of a read transaction, which SQLite's WAL refuses at once, without
            // waiting, when another connection wrote meanwhile.)
            return Ok(());
        }
        let sql = concat!(
            "SELECT epoch FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3
             AND expires_at > ",
            db_now!(postgres),
            " FOR SHARE"
        );
        let held: Option<i64> = sqlx::query_scalar(sql)
            .bind(LEADER)
            .bind(&holder)
            .bind(epoch)
            .fetch_optional(conn)
            .await?;
        match held {
            Some(_) => Ok(()),
            None => Err(fenced(&format!("epoch {epoch} is over"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a real SQLite file: an expired lease is taken over with the next epoch, a live one is
    /// not; once taken over, the old holder's renewals and fenced commits are refused.
    #[tokio::test]
    async fn a_lease_changes_hands_only_when_expired_and_fences_the_old_holder() {
        let (_dir, _, store) = crate::store::temp_store(2).await;
        let mut conn = store.pool().acquire().await.expect("conn");
        let a = Store::lease_acquire(&mut conn, true, "a", 60_000)
            .await
            .expect("acquire");
        assert_eq!(a, Some(1));
        let b = Store::lease_acquire(&mut conn, true, "b", 60_000)
            .await
            .expect("acquire");
        assert_eq!(b, None, "a live lease was taken over");
        assert!(Store::lease_renew(&mut conn, true, "a", 1, 60_000)
            .await
            .expect("renew"));
        store.set_fence(Fence::Leader {
            holder: "a".into(),
            epoch: 1,
        });
        store
            .check_fence(&mut conn)
            .await
            .expect("the holder commits");

        Store::lease_release(&mut conn, "a", 1)
            .await
            .expect("release");
        let b = Store::lease_acquire(&mut conn, true, "b", 60_000)
            .await
            .expect("acquire");
        assert_eq!(
            b,
            Some(2),
            "a released lease goes to the next with a new epoch"
        );
        assert!(!Store::lease_renew(&mut conn, true, "a", 1, 60_000)
            .await
            .expect("renew"));
        let current = store
            .lease_current()
            .await
            .expect("current")
            .expect("a lease");
        assert_eq!((current.holder.as_str(), current.epoch), ("b", 2));
        assert!(current.expires_in_ms > 50_000);
        store.set_fence(Fence::Standby);
        assert!(is_fenced(
            &store.check_fence(&mut conn).await.expect_err("standby")
        ));
    }
}
