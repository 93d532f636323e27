// Package neptune keeps Karma's component graph and lineage in Amazon Neptune (or any Gremlin
// Server 3.7 set up like it) over the Gremlin websocket protocol, with gremlin-go's
// DriverRemoteConnection. Every write and every store query is a bytecode traversal: no Groovy
// scripts, no lambdas (Neptune accepts neither for bytecode). Only the read-only
// `karma graph query` command submits a Gremlin string, after MutatingSteps has vetted it.
//
// # Connection
//
// Open dials the endpoint (ws://host:port/gremlin, wss:// for Neptune). With Options.IAM the
// websocket handshake (GET /gremlin) is signed with SigV4 for the service "neptune-db"
// (SignHandshake): a fresh signature for every new connection, so a reconnect after the
// signature's 5-minute validity still authenticates. A connection that breaks (server restart,
// failover, network) is dropped and the next call dials again; the error of the failed call is
// transient (Transient() true), so the pipeline's RetryTransient middleware retries with backoff.
// Server timeouts, throttling and Neptune's concurrent-modification errors are transient too;
// malformed traversals and constraint errors are not.
//
// # Graph mapping (GraphStore)
//
// Every element carries the property ns (StoreOptions.Namespace, "karma" by default), so that
// several graphs can share one cluster (tests use a namespace each); with a non-default
// namespace every id is prefixed "<namespace>:".
//
//	vertex  label "component", id = component id "<env>/<type>/<nickname>"
//	        properties (single cardinality): env, type, nickname, config_path, runtime_path,
//	        config_hash, runtime_hash, runtime_status, broken (bool), files (JSON array),
//	        runtime_keys (JSON array), sub_runtime_paths (JSON array), hash (first 128 bits of
//	        the SHA-256 of the component's JSON form, hex), ns
//	edge    label "depends_on", dependent -> dependency, id "<from>|depends_on|<to>"
//	        properties: consumes (JSON array), sources (JSON array of graph.Source), env (of
//	        the dependent), hash (of the graph.EdgeDoc JSON, as for components), ns
//	edge    label "emits_runtime_to", dependency -> dependent, id "<to>|emits_runtime_to|<from>"
//	        (the runtime view of the same reference, written and dropped with its depends_on
//	        edge in the same request) properties: keys (JSON array = consumes), env, hash, ns
//	vertex  label "graph_commit", id "graph-commit:<env>": the commit env's graph was last
//	        written at (WriteAt, one request after the graph; a Write that changed env's graph
//	        drops it, one request) properties: env, commit, ns
//
// Write is a delta. The hash covers an element's whole JSON form, its id included, so one
// traversal reading only the stored hashes of the environments' components and depends_on
// edges says which elements are unchanged. A rebuild with no change costs that one request and
// writes nothing. Stored hashes the new graph lacks belong to changed or removed elements: a
// second traversal reads their ids (by value when few, else every (id, hash) pair in scope).
// New and changed elements are then upserted in batches of StoreOptions.BatchSize rows per
// request: g.inject(rows).unfold().as('r').mergeV(select('m')).property(single, k,
// select('r').select(k))... for components, and for edges g.inject(rows).unfold().union(
// mergeE(select('d')).option(onCreate, select('dp')).option(onMatch, select('dp')),
// mergeE(select('e'))...) so that an edge and its twin travel together. Removed elements are
// dropped by id. A removed component that lineage still points at (an incoming "deploys" or
// "drifted" edge) keeps its vertex, minus its hash, so the audit trail survives; Read only
// returns components that have a hash.
//
// # Lineage mapping (LineageStore)
//
//	vertex "change"     id = change set id; env, correlation_id, source, root_causes (JSON),
//	                    actor (JSON), at (Unix ns, for ordering), at_text (RFC 3339, as
//	                    recorded), affected (JSON), rejected
//	vertex "deployment" id = deployment id; change_set_id, env, component, wave, caused_by
//	                    (JSON, as recorded), status, detail, changed_keys (JSON), at, at_text,
//	                    actor (JSON), outcome_at (Unix ns, set by SetOutcome)
//	vertex "root"       id = "<kind>:<id>" (commit, parameter, request); kind, ref
//	vertex "drift"      id = drift id; env, component, kind, reason, detail, commit,
//	                    parameter, action, change_set_id, actor (JSON), at, at_text
//	vertex "component"  the graph's vertex, created bare (no hash) when lineage names a
//	                    component the graph store has not written
//	edges  change -triggered-> deployment, deployment -deploys-> component,
//	       deployment -caused_by-> deployment | root (property keys, JSON),
//	       change -rooted_in-> root, drift -drifted-> component; id "<from>|<label>|<to>"
//	       (a corrective change set's root is the root vertex "drift:<drift id>")
//
// Writes are idempotent upserts (mergeV/mergeE with deterministic ids), one request each. A
// change or deployment named before it is recorded (a deployment's change set, an upstream
// deployment) exists as a bare vertex until recorded, and is not returned by the queries until
// then (they require the property at). Each query is a single traversal.
package neptune
