package dynamo

// The unfinished change sets of an environment (changeset.UnfinishedLister), kept in the change
// set table by an item per change set beside it:
//
//	id           S   "#unfinished#" + hex SHA-256 of the change set id
//	cs, env      S   the change set and its environment
//	kind         S   "unfinished", while the change set is not done: the partition and sort
//	created      S   } key of the by-created index; created is the first 128 bits of the
//	                     SHA-256 of env in hex, "#", and the change set's created
//	                     ("<created_at>#<id>")
//	created_at   S   the change set's created_at (RFC 3339, nanoseconds)
//	behind       L   its queued_behind (absent when empty)
//	comps        B   its components, a sorted JSON array, gzip-compressed
//	done         BOOL  true once the change set is done (the item then has no kind, no created)
//	updated_at   S   time of the last write
//
// and one marker, id "#unfinished#complete" (complete BOOL), saying every change set of the table
// has its item. The item is written in the TransactWriteItems that writes the change set, with
// its condition, whenever what it holds changes: at Create (a change set created done needs
// none), and at the Update that finishes it, starts it again (a failed deployment retried),
// queues it behind other change sets or releases it. A Put of an item without kind takes it out
// of the index: the functions may put items of the table, not delete or update them
// (terraform/iam.tf, ChangeSetsAreNotErased).
//
// Unfinished queries the environment's part of the partition "unfinished" of by-created (its
// sort keys begin with the environment's hash; newest first; the index holds keys only) and
// reads the marker, the environment's registry and the items it names in BatchGetItems of 100
// keys with consistent reads, which drop an item the index still shows after it was put done: a Query and
// a BatchGetItem as a rule, however many change sets the table holds, where it was a Query of
// every change set and a BatchGetItem of every document. Until the marker says complete — a
// table written before these items, or one whose marker is under an hour old — it answers from
// List and backfills: a Put of the item of each unfinished change set List gave, on condition
// that it has none (one written since is newer than List's), then the marker, unless it is
// there.
//
// The by-created index is eventually consistent: an item put a moment ago may be missing from
// it, and two resolves creating change sets of one environment back to back (the queues are not
// FIFO) missed each other and deployed the same component at once. So Unfinished also reads,
// consistently, each environment's registry of its unfinished change sets, which the
// transactions creating and finishing them write, and the items of those it names that the
// index does not show yet (changesets_registry.go).
//
// UnfinishedSets reads the whole partition and the change sets its sort keys name (the
// expiry's sweep: changeset.Sweep), with the marker in the same BatchGetItem.
//
// A function of a version from before these items, still running when the marker was put (the
// functions are updated one by one), writes change sets without their items: for an hour after
// the marker was put (ChangeSetOptions.Settle), the answers still come from List, each
// backfilling what it finds without an item. Not covered: such a writer still at work after
// that (a karma binary from before the items run against the table). Removing the marker makes
// the next Unfinished list and backfill again, and settle anew.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
)

const (
	unfinishedPrefix = "#unfinished#"
	unfinishedMarker = unfinishedPrefix + "complete"
	kindUnfinished   = "unfinished"
	attrCS           = "cs"
	attrCreatedAt    = "created_at"
	attrBehind       = "behind"
	attrComps        = "comps"
	attrDone         = "done"
)

var (
	_ changeset.UnfinishedLister    = (*ChangeSets)(nil)
	_ changeset.UnfinishedSetLister = (*ChangeSets)(nil)
)

// reserved reports an id of the table's own items, which no change set may take.
func reserved(id string) bool {
	return strings.HasPrefix(id, appliedPrefix) || strings.HasPrefix(id, unfinishedPrefix) || strings.HasPrefix(id, promotingPrefix)
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// unfinishedKey is the id of change set id's item.
func unfinishedKey(id string) string { return unfinishedPrefix + hexSum(id) }

// envPrefix begins the by-created sort key of env's unfinished change sets in the partition
// "unfinished": the first 128 bits of the SHA-256 of env, in hex, and "#".
func envPrefix(env string) string { return hexSum(env)[:32] + "#" }

// unfinishedID is the change set an unfinished item's by-created sort key names.
func unfinishedID(created string) (string, bool) {
	if len(created) < 33 || created[32] != '#' {
		return "", false
	}
	_, id, ok := strings.Cut(created[33:], "#")
	return id, ok
}

// queueEntry is what a change set's item holds.
type queueEntry struct {
	env       string
	done      bool
	createdAt time.Time
	created   string
	behind    []string
	comps     []string // sorted
	promoting bool     // PromotionWaiting (changesets_promoting.go)
}

func entryOf(cs *changeset.ChangeSet) queueEntry {
	return queueEntry{env: cs.Env, done: cs.Done(), createdAt: cs.CreatedAt, created: createdKey(cs),
		behind: slices.Clone(cs.QueuedBehind), comps: slices.Sorted(maps.Keys(cs.Nodes)), promoting: cs.PromotionWaiting()}
}

// equal reports whether the items of the unfinished change sets of e and o are the same.
func (e queueEntry) equal(o queueEntry) bool {
	return e.env == o.env && e.done == o.done && e.createdAt.Equal(o.createdAt) && e.created == o.created &&
		slices.Equal(e.behind, o.behind) && slices.Equal(e.comps, o.comps)
}

// unfinishedPut is the Put of change set id's item holding e (without kind when e is done).
func (s *ChangeSets) unfinishedPut(id string, e queueEntry) *types.Put {
	item := map[string]types.AttributeValue{
		attrID: str(unfinishedKey(id)), attrCS: str(id), attrEnv: str(e.env),
		attrUpdatedAt: str(now().UTC().Format(tsLayout)),
	}
	if e.done {
		item[attrDone] = &types.AttributeValueMemberBOOL{Value: true}
	} else {
		item[attrKind], item[attrCreated] = str(kindUnfinished), str(envPrefix(e.env)+e.created)
		item[attrCreatedAt] = str(e.createdAt.UTC().Format(time.RFC3339Nano))
		if len(e.behind) > 0 {
			l := make([]types.AttributeValue, len(e.behind))
			for i, b := range e.behind {
				l[i] = str(b)
			}
			item[attrBehind] = &types.AttributeValueMemberL{Value: l}
		}
		raw, _ := json.Marshal(e.comps)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		item[attrComps] = &types.AttributeValueMemberB{Value: buf.Bytes()}
	}
	return &types.Put{TableName: aws.String(s.table), Item: item}
}

// indexed are the Puts of change set id's items that writing cs changes (before: what they hold
// of the stored change set, nil when creating it): its item of the unfinished change sets and
// its item of the change sets with promotion work (changesets_promoting.go).
func (s *ChangeSets) indexed(id string, cs *changeset.ChangeSet, before *queueEntry) []*types.Put {
	after := entryOf(cs)
	var out []*types.Put
	if before == nil && !after.done || before != nil && !before.equal(after) {
		out = append(out, s.unfinishedPut(id, after))
	}
	if before == nil && after.promoting || before != nil && (before.promoting != after.promoting || after.promoting && before.created != after.created) {
		out = append(out, s.promotingPut(id, after))
	}
	return out
}

// queuedOf reads an item written by unfinishedPut; ok is false for one put done.
func queuedOf(it map[string]types.AttributeValue) (q changeset.Queued, comps []string, ok bool, err error) {
	if _, has := it[attrKind]; !has {
		return q, nil, false, nil
	}
	if q.ID, err = getStr(it, attrCS); err != nil {
		return q, nil, false, err
	}
	at, err := getStr(it, attrCreatedAt)
	if err != nil {
		return q, nil, false, err
	}
	if q.CreatedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return q, nil, false, fmt.Errorf("attribute %s: %w", attrCreatedAt, err)
	}
	switch l := it[attrBehind].(type) {
	case nil:
	case *types.AttributeValueMemberL:
		for _, v := range l.Value {
			b, ok := v.(*types.AttributeValueMemberS)
			if !ok {
				return q, nil, false, fmt.Errorf("attribute %s: not a list of strings", attrBehind)
			}
			q.QueuedBehind = append(q.QueuedBehind, b.Value)
		}
	default:
		return q, nil, false, fmt.Errorf("attribute %s: not a list", attrBehind)
	}
	b, isB := it[attrComps].(*types.AttributeValueMemberB)
	if !isB {
		return q, nil, false, fmt.Errorf("attribute %s: missing or not binary", attrComps)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b.Value))
	if err != nil {
		return q, nil, false, fmt.Errorf("attribute %s: %w", attrComps, err)
	}
	raw, err := io.ReadAll(zr)
	if err == nil {
		err = json.Unmarshal(raw, &comps)
	}
	if err != nil {
		return q, nil, false, fmt.Errorf("attribute %s: %w", attrComps, err)
	}
	return q, comps, true, nil
}

// Unfinished returns env's change sets that are not done and have a node for one of components
// (every one of env when components is nil), newest first, each with those of components it has
// a node for (changeset.UnfinishedLister). See the top of this file.
func (s *ChangeSets) Unfinished(ctx context.Context, env string, components []string) ([]changeset.Queued, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexCreated),
		KeyConditionExpression:    aws.String("#k = :k AND begins_with(#c, :p)"),
		ExpressionAttributeNames:  map[string]string{"#k": attrKind, "#c": attrCreated},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(kindUnfinished), ":p": str(envPrefix(env))},
		ScanIndexForward:          aws.Bool(false),
	}
	reg := registryKey(env)
	keys := []map[string]types.AttributeValue{{attrID: str(unfinishedMarker)}, {attrID: str(reg)}}
	indexed := map[string]bool{}
	for {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, wrap("change set unfinished", s.table, env, err)
		}
		for _, it := range out.Items {
			keys = append(keys, map[string]types.AttributeValue{attrID: it[attrID]})
			indexed[sval(it, attrID)] = true
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	items, err := batchGet(ctx, s.client, s.table, keys)
	if err != nil {
		return nil, wrap("change set unfinished", s.table, env, err)
	}
	complete := false
	var registered []string // the change sets env's registry names (changesets_registry.go)
	var version int64
	for _, it := range items {
		switch id, _ := getStr(it, attrID); id {
		case unfinishedMarker:
			complete = s.settled(it)
		case reg:
			if version, registered, err = registryIDs(it); err != nil {
				return nil, fmt.Errorf("dynamo: change set table %s: registry of the unfinished change sets of %s: unreadable item: %w", s.table, env, err)
			}
		}
	}
	if !complete {
		all, err := s.List(ctx)
		if err != nil {
			return nil, err
		}
		// What the registry names and List, from the index, did not give yet.
		var missing []map[string]types.AttributeValue
		for _, id := range registered {
			if !slices.ContainsFunc(all, func(cs *changeset.ChangeSet) bool { return cs.ID == id }) && !reserved(id) {
				missing = append(missing, map[string]types.AttributeValue{attrID: str(id)})
			}
		}
		if len(missing) > 0 {
			more, err := s.read(ctx, missing)
			if err != nil {
				return nil, err
			}
			all = append(all, more...)
			sortNewest(all)
		}
		var stale []string
		for _, id := range registered {
			if i := slices.IndexFunc(all, func(cs *changeset.ChangeSet) bool { return cs.ID == id }); i < 0 || all[i].Done() {
				stale = append(stale, id)
			}
		}
		s.prune(ctx, env, version, registered, stale)
		s.backfillUnfinished(ctx, all)
		return changeset.Unfinished(ctx, listed{all: all}, env, components)
	}
	// The items of what the registry names and the index does not show yet (none, once it
	// has caught up), read consistently too.
	var lagging []map[string]types.AttributeValue
	lagID := map[string]string{} // item id -> change set id
	for _, id := range registered {
		if k := unfinishedKey(id); !indexed[k] {
			indexed[k], lagID[k] = true, id
			lagging = append(lagging, map[string]types.AttributeValue{attrID: str(k)})
		}
	}
	if len(lagging) > 0 {
		more, err := batchGet(ctx, s.client, s.table, lagging)
		if err != nil {
			return nil, wrap("change set unfinished", s.table, env, err)
		}
		items = append(items, more...)
		// Of those, read after the registry, the ones done or gone are stale (an item read in
		// the same BatchGetItem as the registry may have been read before it: a change set done
		// then, started again since, is not).
		var stale []string
		for _, k := range lagging {
			if !slices.ContainsFunc(more, func(it map[string]types.AttributeValue) bool {
				return sval(it, attrID) == sval(k, attrID) && sval(it, attrKind) == kindUnfinished
			}) {
				stale = append(stale, lagID[sval(k, attrID)])
			}
		}
		s.prune(ctx, env, version, registered, stale)
	}
	want := map[string]bool{}
	for _, c := range components {
		want[c] = true
	}
	var out []changeset.Queued
	for _, it := range items {
		if id, _ := getStr(it, attrID); id == unfinishedMarker || id == reg || sval(it, attrKind) != kindUnfinished || sval(it, attrEnv) != env {
			continue // the marker; the registry; done since the index was read; another environment's of the same hash
		}
		q, comps, ok, err := queuedOf(it)
		if err != nil {
			id, _ := getStr(it, attrID)
			return nil, fmt.Errorf("dynamo: change set table %s: item %s of an unfinished change set: unreadable: %w", s.table, id, err)
		}
		if !ok {
			continue
		}
		if components != nil {
			for _, c := range comps {
				if want[c] {
					q.Components = append(q.Components, c)
				}
			}
			if len(q.Components) == 0 {
				continue
			}
		}
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b changeset.Queued) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// UnfinishedSets returns every change set that is not done, newest first
// (changeset.UnfinishedSetLister). See the top of this file.
func (s *ChangeSets) UnfinishedSets(ctx context.Context) ([]*changeset.ChangeSet, error) {
	return s.partitionSets(ctx, partition{op: "change set unfinished", what: "an unfinished change set",
		kind: kindUnfinished, marker: unfinishedMarker, idOf: unfinishedID,
		keep:     func(cs *changeset.ChangeSet) bool { return !cs.Done() }, // done since the index was read: left out
		backfill: s.backfillUnfinished,
	})
}

// partition is a partition of the by-created index holding an item per change set of a kind
// (unfinished, with promotion work), with its marker: what partitionSets reads.
type partition struct {
	op, what     string // for errors: "change set unfinished", "an unfinished change set"
	kind, marker string
	idOf         func(created string) (id string, ok bool) // the change set a sort key names
	keep         func(*changeset.ChangeSet) bool           // still of the kind, read after the index
	backfill     func(context.Context, []*changeset.ChangeSet)
}

// partitionSets returns the change sets p's partition names that p.keep keeps, newest first: a
// Query of the partition and a BatchGetItem of the marker and the change sets; until the marker
// says complete (settled), the change sets of List that p.keep keeps, backfilling p's items.
func (s *ChangeSets) partitionSets(ctx context.Context, p partition) ([]*changeset.ChangeSet, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexCreated),
		KeyConditionExpression:    aws.String("#k = :k"),
		ExpressionAttributeNames:  map[string]string{"#k": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(p.kind)},
		ScanIndexForward:          aws.Bool(false),
	}
	keys := []map[string]types.AttributeValue{{attrID: str(p.marker)}}
	seen := map[string]bool{}
	for {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, wrap(p.op, s.table, "", err)
		}
		for _, it := range out.Items {
			id, ok := p.idOf(sval(it, attrCreated))
			if !ok {
				return nil, fmt.Errorf("dynamo: change set table %s: item %s of %s: unreadable sort key %q", s.table, sval(it, attrID), p.what, sval(it, attrCreated))
			}
			if !seen[id] && !reserved(id) {
				seen[id] = true
				keys = append(keys, map[string]types.AttributeValue{attrID: str(id)})
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	items, err := batchGet(ctx, s.client, s.table, keys)
	if err != nil {
		return nil, wrap(p.op, s.table, "", err)
	}
	complete := false
	var out []*changeset.ChangeSet
	for _, it := range items {
		if sval(it, attrID) == p.marker {
			complete = s.settled(it)
			continue
		}
		cs, err := decodeChangeSet(it)
		if err != nil {
			return nil, unreadable(s.table, it, err)
		}
		if p.keep(cs) {
			out = append(out, cs)
		}
	}
	if !complete {
		all, err := s.List(ctx)
		if err != nil {
			return nil, err
		}
		p.backfill(ctx, all)
		return slices.DeleteFunc(all, func(cs *changeset.ChangeSet) bool { return !p.keep(cs) }), nil
	}
	sortNewest(out)
	return out, nil
}

// backfillUnfinished puts the item of every change set of all that is not done, on condition
// that it has none, then the marker saying every change set has its item. Its failures are
// left for the next Unfinished to try again: the answer was taken from List.
func (s *ChangeSets) backfillUnfinished(ctx context.Context, all []*changeset.ChangeSet) {
	for _, cs := range all {
		if cs.Done() {
			continue
		}
		p := s.unfinishedPut(cs.ID, entryOf(cs))
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: p.TableName, Item: p.Item,
			ConditionExpression:      aws.String("attribute_not_exists(#id)"),
			ExpressionAttributeNames: map[string]string{"#id": attrID},
		})
		if err != nil && !isConditionFailed(err) {
			return
		}
	}
	s.putMarker(ctx, unfinishedMarker)
}

// putMarker puts the marker id saying complete unless it is there: its updated_at is when it
// was first found complete, from which it settles (settled).
func (s *ChangeSets) putMarker(ctx context.Context, id string) {
	_, _ = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{attrID: str(id), attrComplete: &types.AttributeValueMemberBOOL{Value: true},
			attrUpdatedAt: str(now().UTC().Format(tsLayout))},
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	})
}

// settled reports whether marker says complete and was put at least Settle ago
// (ChangeSetOptions): a function of a version from before the records, still running when it
// was put, has ended since, and what it wrote without its record was backfilled by the answers
// from List meanwhile.
func (s *ChangeSets) settled(marker map[string]types.AttributeValue) bool {
	c, ok := marker[attrComplete].(*types.AttributeValueMemberBOOL)
	if !ok || !c.Value {
		return false
	}
	at, err := time.Parse(tsLayout, sval(marker, attrUpdatedAt))
	return err == nil && now().Sub(at) >= s.opts.Settle
}
