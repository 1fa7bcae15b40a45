/* log/catalog: the SQLite catalog beside the log (WAL mode): sessions, leases and sandboxes,
 * for queries and for other programs to read. Never authoritative: the log wins, and on open the
 * catalog is repaired from it. Schema changes are numbered migrations (PRAGMA user_version). */
#ifndef CORRAL_LOG_CATALOG_H
#define CORRAL_LOG_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "corral/error.h"
#include "corral/log.h"

struct catalog_session {
	const char *id;
	uint64_t created_ns, epoch, last_seq;
};

#define CATALOG_SCHEMA_VERSION 2

/* Opens (creating) the catalog at path and migrates it to CATALOG_SCHEMA_VERSION; a catalog
 * from a newer corral is refused (-EPROTONOSUPPORT). */
int catalog_open(const char *path, sqlite3 **ret, struct cr_error *err);
void catalog_close(sqlite3 *db);

/* Makes the catalog's sessions exactly the log's, in one transaction; returns how many rows
 * were changed (inserted, updated or deleted). */
int catalog_repair(sqlite3 *db, const struct catalog_session *sessions, size_t n,
		   struct cr_error *err);

/* Inserts or updates one session (after a create, a lease, or at close). */
int catalog_put(sqlite3 *db, const struct catalog_session *s, struct cr_error *err);

/* The sandboxes table (see cr_log_sandbox_note and friends in corral/log.h). */
int catalog_sandbox_put(sqlite3 *db, const struct cr_log_sandbox *s, struct cr_error *err);
int catalog_sandbox_delete(sqlite3 *db, const char *id, struct cr_error *err);
/* The rows holding address, or every row (address NULL), sorted by id; *ret is malloc'd. */
int catalog_sandboxes(sqlite3 *db, const char *address, struct cr_log_sandbox **ret, size_t *ret_n,
		      struct cr_error *err);
/* Makes the table exactly v, in one transaction. */
int catalog_sandboxes_reset(sqlite3 *db, const struct cr_log_sandbox *v, size_t n,
			    struct cr_error *err);

#endif
