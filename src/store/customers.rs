//! Customers: the person behind one or more contacts.
//!
//! A contact (one identity on one channel) belongs to one customer. Contacts are linked
//! automatically when they share an exact E.164 phone number or email address (the same person
//! writing on WhatsApp, Viber and SMS), and by operators (`!sb link`, `!sb unlink`); a contact an
//! operator linked or unlinked by hand is left alone by the automatic matching. The customer
//! carries what routing needs across channels: segment tags and the operator who handled them
//! last (sticky routing).

use sqlx::{AnyConnection, Row};

use super::conversations::{Contact, Conversation};
use super::{now_ms, Store, StoreError};

/// A customer with everything an operator is shown about them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub id: i64,
    pub tags: Vec<String>,
    pub last_owner: Option<String>,
    /// Every contact of the customer with its conversations, oldest contact first.
    pub contacts: Vec<(Contact, Vec<Conversation>)>,
}

/// Give a contact its customer (in the transaction that stores its inbound event): the customer
/// of another contact with the same phone or email, merging customers that turn out to be the
/// same person, else a new one. Returns the customer id.
pub async fn link_contact(
    conn: &mut AnyConnection,
    channel: &str,
    contact_id: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT customer_id, phone, email, link_state, last_owner FROM contacts
         WHERE channel = $1 AND contact_id = $2",
    )
    .bind(channel)
    .bind(contact_id)
    .fetch_one(&mut *conn)
    .await?;
    let own: Option<i64> = row.try_get("customer_id")?;
    let phone: Option<String> = row.try_get("phone")?;
    let email: Option<String> = row.try_get("email")?;
    let manual = row.try_get::<Option<String>, _>("link_state")?.is_some();
    let legacy_owner: Option<String> = row.try_get("last_owner")?;
    if let (Some(id), true) = (own, manual) {
        return Ok(id);
    }
    let mut ids: Vec<i64> = own.into_iter().collect();
    let email = email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'));
    let phone = phone.filter(|p| is_e164(p));
    if phone.is_some() || email.is_some() {
        let rows = sqlx::query(
            "SELECT DISTINCT customer_id FROM contacts
             WHERE customer_id IS NOT NULL AND (link_state IS NULL OR link_state <> 'unlinked')
               AND NOT (channel = $1 AND contact_id = $2)
               AND (phone = $3 OR LOWER(email) = $4)",
        )
        .bind(channel)
        .bind(contact_id)
        .bind(phone.as_deref())
        .bind(email.as_deref())
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let id: i64 = r.try_get("customer_id")?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let Some(&target) = ids.iter().min() else {
        let id = super::new_id(&mut *conn).await?;
        sqlx::query("INSERT INTO customers (id, last_owner, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(legacy_owner.as_deref())
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
        set_customer(conn, channel, contact_id, id).await?;
        return Ok(id);
    };
    let others: Vec<i64> = ids.iter().copied().filter(|&i| i != target).collect();
    merge(conn, target, &others).await?;
    if own != Some(target) {
        set_customer(conn, channel, contact_id, target).await?;
    }
    Ok(target)
}

/// `+` and 7 to 15 digits: what every channel that knows a phone number reports.
fn is_e164(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn set_customer(
    conn: &mut AnyConnection,
    channel: &str,
    contact_id: &str,
    customer: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE contacts SET customer_id = $1 WHERE channel = $2 AND contact_id = $3")
        .bind(customer)
        .bind(channel)
        .bind(contact_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Fold customers `others` into `target`: their contacts, tags and (when the target has none)
/// last owner.
async fn merge(conn: &mut AnyConnection, target: i64, others: &[i64]) -> Result<(), StoreError> {
    for &other in others {
        sqlx::query(
            "INSERT INTO customer_tags (customer_id, tag)
             SELECT $1, tag FROM customer_tags WHERE customer_id = $2
             ON CONFLICT DO NOTHING",
        )
        .bind(target)
        .bind(other)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE customers SET last_owner = (SELECT last_owner FROM customers WHERE id = $2)
             WHERE id = $1 AND last_owner IS NULL",
        )
        .bind(target)
        .bind(other)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE contacts SET customer_id = $1 WHERE customer_id = $2")
            .bind(target)
            .bind(other)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1")
            .bind(other)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM customers WHERE id = $1")
            .bind(other)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A segment tag as stored: lowercase letters, digits, `-` and `_`, 1 to 32 of them.
pub fn normalize_tag(raw: &str) -> Option<String> {
    let tag = raw.trim().trim_start_matches('#').to_lowercase();
    let ok = (1..=32).contains(&tag.chars().count())
        && tag
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    ok.then_some(tag)
}

impl Store {
    /// The customer id of a contact, linking it first when it has none yet (contacts stored
    /// before customers existed).
    pub async fn customer_of(&self, channel: &str, contact_id: &str) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT customer_id FROM contacts WHERE channel = $1 AND contact_id = $2")
                .bind(channel)
                .bind(contact_id)
                .fetch_optional(self.pool())
                .await?;
        if let Some(Some(id)) = row
            .map(|r| r.try_get::<Option<i64>, _>("customer_id"))
            .transpose()?
        {
            return Ok(id);
        }
        let mut tx = self.pool().begin().await?;
        let id = link_contact(&mut tx, channel, contact_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The segment tags of a customer, sorted.
    pub async fn customer_tags(&self, customer: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag")
            .bind(customer)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| r.try_get("tag")).collect()
    }

    /// Add (`true`) or remove segment tags; returns the tags afterwards.
    pub async fn tag_customer(
        &self,
        customer: i64,
        tags: &[String],
        add: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin().await?;
        for tag in tags {
            let sql = if add {
                "INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM customer_tags WHERE customer_id = $1 AND tag = $2"
            };
            sqlx::query(sql)
                .bind(customer)
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.customer_tags(customer).await
    }

    /// A customer with their contacts and conversations.
    pub async fn customer(&self, customer: i64) -> Result<Customer, StoreError> {
        let owner = sqlx::query("SELECT last_owner FROM customers WHERE id = $1")
            .bind(customer)
            .fetch_optional(self.pool())
            .await?;
        let last_owner = owner
            .map(|r| r.try_get::<Option<String>, _>("last_owner"))
            .transpose()?
            .flatten();
        let rows = sqlx::query(
            "SELECT channel, contact_id FROM contacts WHERE customer_id = $1
             ORDER BY channel, contact_id",
        )
        .bind(customer)
        .fetch_all(self.pool())
        .await?;
        let mut contacts = Vec::new();
        for r in rows {
            let channel: String = r.try_get("channel")?;
            let contact_id: String = r.try_get("contact_id")?;
            if let Some(contact) = self.contact(&channel, &contact_id).await? {
                let conversations = self.conversations_of(&channel, &contact_id).await?;
                contacts.push((contact, conversations));
            }
        }
        Ok(Customer {
            id: customer,
            tags: self.customer_tags(customer).await?,
            last_owner,
            contacts,
        })
    }

    /// An operator links two customers: every contact of `from` joins `into`, by hand (the
    /// automatic matching leaves them be from now on).
    pub async fn link_customers(
        &self,
        into: i64,
        from: i64,
        operator: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE contacts SET link_state = 'linked', linked_by = $1
             WHERE customer_id = $2 OR customer_id = $3",
        )
        .bind(operator)
        .bind(into)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        merge(&mut tx, into, &[from]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An operator separates a contact from its customer: it becomes a customer of its own
    /// (keeping the tags), and automatic matching no longer joins it to anyone. Returns the new
    /// customer id.
    pub async fn unlink_contact(
        &self,
        channel: &str,
        contact_id: &str,
        operator: &str,
    ) -> Result<i64, StoreError> {
        let old = self.customer_of(channel, contact_id).await?;
        let mut tx = self.pool().begin().await?;
        let id = super::new_id(&mut tx).await?;
        sqlx::query("INSERT INTO customers (id, last_owner, created_at) VALUES ($1, NULL, $2)")
            .bind(id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO customer_tags (customer_id, tag)
             SELECT $1, tag FROM customer_tags WHERE customer_id = $2",
        )
        .bind(id)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        set_customer(&mut tx, channel, contact_id, id).await?;
        sqlx::query(
            "UPDATE contacts SET link_state = 'unlinked', linked_by = $1
             WHERE channel = $2 AND contact_id = $3",
        )
        .bind(operator)
        .bind(channel)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Customers with a contact of this phone number or email address (exact match).
    pub async fn customers_by_address(&self, address: &str) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT customer_id FROM contacts
             WHERE customer_id IS NOT NULL AND (phone = $1 OR LOWER(email) = $2)",
        )
        .bind(address.trim())
        .bind(address.trim().to_lowercase())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("customer_id")).collect()
    }

    /// Every conversation of a contact, oldest first.
    pub async fn conversations_of(
        &self,
        channel: &str,
        contact_id: &str,
    ) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, account, chat, contact_id, room_id FROM conversations
             WHERE channel = $1 AND contact_id = $2 ORDER BY id",
        )
        .bind(channel)
        .bind(contact_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(super::conversations::conversation_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lowercase_words() {
        assert_eq!(normalize_tag(" Wholesale "), Some("wholesale".into()));
        assert_eq!(normalize_tag("#vip"), Some("vip".into()));
        assert_eq!(normalize_tag("b2b-eu_1"), Some("b2b-eu_1".into()));
        assert_eq!(normalize_tag("two words"), None);
        assert_eq!(normalize_tag(""), None);
        assert_eq!(normalize_tag(&"x".repeat(33)), None);
    }

    #[test]
    fn only_e164_phones_link() {
        assert!(is_e164("+15551234567"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+1 555 123"));
        assert!(!is_e164("+123"));
    }
}
