/* log/catalog: the SQLite catalog beside the log (WAL mode): sessions and leases, for
 * queries and for other programs to read. Never authoritative: the log wins, and on open the
 * catalog is repaired from it. Schema changes are numbered migrations (PRAGMA user_version). */
#ifndef CORRAL_LOG_CATALOG_H
#define CORRAL_LOG_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "corral/error.h"

struct catalog_session {
	const char *id;
	uint64_t created_ns, epoch, last_seq;
};

#define CATALOG_SCHEMA_VERSION 1

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

#endif
