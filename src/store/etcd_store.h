/*
 * etcd_store.h - the new store: etcd v3 through its JSON gateway.
 *
 * Keys <prefix>tasks/<id>, <prefix>swarms/<id>, value = compact canonical
 * JSON; a claimed task with a TTL also holds <prefix>claims/<id> under an
 * etcd lease.  Mutations are txns comparing the mod_revision read before
 * (create_revision 0 for create).  Several endpoints: requests fail over to
 * the next one on a connection error.
 */
#ifndef CO_ETCD_STORE_H
#define CO_ETCD_STORE_H

#include "store.h"

typedef struct co_etcd_opts {
	const char *const *endpoints; /* "http://127.0.0.1:2379", ... */
	size_t n_endpoints;
	const char *prefix;       /* default "/" */
	const char *user;         /* NULL: no auth */
	const char *password;
	const char *ca_file;      /* TLS options, NULL for defaults */
	const char *cert_file;
	const char *key_file;
	int connect_timeout_ms;   /* default 1000 */
	int request_timeout_ms;   /* default 5000 */
	int max_retries;          /* txn CAS retries before CO_EUNAVAIL; default 200 */
} co_etcd_opts;

#define CO_ETCD_OPTS_INIT { NULL, 0, "/", NULL, NULL, NULL, NULL, NULL, 1000, 5000, 200 }

/*
 * Open the etcd store.  Does not contact etcd (co_store_ping() does), so
 * that a router can start while etcd is down.  CO_EINVAL for bad options.
 */
int co_etcd_store_open(co_store **out, const co_etcd_opts *opts);

#endif
