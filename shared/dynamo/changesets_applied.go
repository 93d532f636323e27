package dynamo

// The deployment of a component applied last (changeset.AppliedReader), kept in the change set
// table by items of their own beside the change sets:
//
//	id               S   "#applied#" + hex SHA-256 of the JSON ["<env>","<component>"]
//	env, component   S   whose deployment it is, for operators
//	applied_created  S   the change set's created_at (tsLayout, as in created)
//	applied_cs       S   the change set whose node of the component applied it last
//	updated_at       S   time of the last write
//
// and one marker, id "#applied#complete" (complete BOOL, gen S), saying the pointers are
// complete: every outcome of the table has been pointed at. The pointers carry no kind, so the
// by-created index (List) never sees them; Create refuses change set ids under "#applied#".
//
// A pointer names the newest change set (by created_at, of equal times the smallest id: the
// first List gives) whose node of the component got an outcome. Create and the Update whose fn
// gives a node an outcome write, in one TransactWriteItems with the change set's Put (and its
// condition), a Put of each such component's pointer on condition that none is there or that
// it names an older change set. A pointer whose condition fails (a newer change set holds it)
// is left out and the transaction made again: the change set is written whatever its pointers.
//
// LastApplied reads the marker and the pointer (one BatchGetItem, consistent), then the change
// set it names. Until the marker says complete — a table written before pointers, or one where
// a write recorded more outcomes at once than a transaction holds (it marks the pointers
// incomplete in its transaction) — it answers from List, and backfills: a conditional Put of
// each pointer List gives, then the marker, on condition that its generation is still the one
// read before List (a write marking it incomplete meanwhile leaves it incomplete). A pointer
// naming a change set whose node has no outcome any more (a failed deployment retried) is
// answered from List too.
//
// Not covered: a function of a version from before the pointers, still running when a new one
// wrote the marker (an invocation in flight while the functions are updated), records its
// outcome without its pointer; until a later outcome of that component, LastApplied answers
// the deployment before it. Removing the marker (id above) makes the next LastApplied list and
// backfill again.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
)

const (
	appliedPrefix      = "#applied#"
	appliedMarker      = appliedPrefix + "complete"
	attrAppliedCreated = "applied_created"
	attrAppliedCS      = "applied_cs"
	attrComplete       = "complete"
	attrGen            = "gen"
	// maxTransactItems is TransactWriteItems' limit on actions.
	maxTransactItems = 100
)

var _ changeset.AppliedBatchReader = (*ChangeSets)(nil)

// appliedKey is the id of the pointer of component in env.
func appliedKey(env, component string) string {
	b, _ := json.Marshal([]string{env, component})
	sum := sha256.Sum256(b)
	return appliedPrefix + hex.EncodeToString(sum[:])
}

// appliedAt is cs's created_at as pointers compare it (createdKey's time).
func appliedAt(cs *changeset.ChangeSet) string {
	return strings.SplitN(createdKey(cs), "#", 2)[0]
}

// pointerPut is the conditional Put of the pointer of component to cs.
func (s *ChangeSets) pointerPut(env, component, at, csID string) *types.Put {
	return &types.Put{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{
			attrID: str(appliedKey(env, component)), attrEnv: str(env), attrComponent: str(component),
			attrAppliedCreated: str(at), attrAppliedCS: str(csID), attrUpdatedAt: str(now().UTC().Format(tsLayout)),
		},
		ConditionExpression:      aws.String("attribute_not_exists(#id) OR #at < :at OR (#at = :at AND #cs >= :cs)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID, "#at": attrAppliedCreated, "#cs": attrAppliedCS},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":at": str(at), ":cs": str(csID),
		},
	}
}

// errLost says the change set's own condition failed (its version moved, or it exists).
var errLost = errors.New("change set condition failed")

// put writes the change set (put, with its condition), those of its items that change (index:
// changesets_unfinished.go, changesets_promoting.go) and the pointers of the
// components in applied (its nodes that got an outcome with this write) in one transaction; a
// pointer that a newer change set holds is left out. It returns errLost when the change set's
// condition failed, nothing being written.
func (s *ChangeSets) put(ctx context.Context, put *types.Put, cs *changeset.ChangeSet, applied []string, index []*types.Put) error {
	if len(applied) == 0 && len(index) == 0 {
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression,
			ExpressionAttributeNames: put.ExpressionAttributeNames, ExpressionAttributeValues: put.ExpressionAttributeValues,
		})
		if isConditionFailed(err) {
			return errLost
		}
		return err
	}
	fixed := []types.TransactWriteItem{{Put: put}} // written whatever the pointers
	for _, p := range index {
		fixed = append(fixed, types.TransactWriteItem{Put: p})
	}
	at := appliedAt(cs)
	pointers := make([]*types.Put, len(applied))
	for i, c := range applied {
		pointers[i] = s.pointerPut(cs.Env, c, at, cs.ID)
	}
	for {
		items := slices.Clone(fixed)
		var rest []*types.Put
		if len(fixed)+len(pointers) <= maxTransactItems {
			for _, p := range pointers {
				items = append(items, types.TransactWriteItem{Put: p})
			}
		} else {
			// More than a transaction holds: the pointers are marked incomplete with the change
			// set, the rest written after it, and LastApplied backfills them from List.
			// A Put, not an UpdateItem: the functions may not update items of the table
			// (terraform/iam.tf, ChangeSetsAreNotErased); a new generation, never used before,
			// tells a backfill in progress that it came in between.
			items = append(items, types.TransactWriteItem{Put: &types.Put{
				TableName: aws.String(s.table),
				Item: map[string]types.AttributeValue{attrID: str(appliedMarker), attrComplete: &types.AttributeValueMemberBOOL{Value: false},
					attrGen: str(fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())), attrUpdatedAt: str(now().UTC().Format(tsLayout))},
			}})
			n := maxTransactItems - len(items)
			for _, p := range pointers[:n] {
				items = append(items, types.TransactWriteItem{Put: p})
			}
			rest = pointers[n:]
		}
		_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var tce *types.TransactionCanceledException
		switch {
		case err == nil:
			for _, p := range rest { // best effort: the marker says incomplete until a backfill
				_ = s.putPointer(ctx, p)
			}
			return nil
		case !errors.As(err, &tce) || len(tce.CancellationReasons) != len(items):
			return err
		}
		if aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed" {
			return errLost
		}
		for i := 1; i < len(fixed); i++ {
			if isRegistry(items[i].Put) && aws.ToString(tce.CancellationReasons[i].Code) == "ConditionalCheckFailed" {
				return errRegistry // another write of the registry came in between (changesets_registry.go)
			}
		}
		// Pointers a newer change set holds: left out, and the transaction made again (the
		// marker is not a pointer: it is put again when they still do not fit).
		var kept []*types.Put
		for i := len(fixed); i < len(items); i++ {
			p := items[i].Put
			if sval(p.Item, attrID) != appliedMarker && aws.ToString(tce.CancellationReasons[i].Code) != "ConditionalCheckFailed" {
				kept = append(kept, p)
			}
		}
		kept = append(kept, rest...)
		if len(kept) == len(pointers) {
			return err // cancelled for another reason (a conflict, throttling): the caller retries
		}
		if pointers = kept; len(pointers) == 0 {
			return s.put(ctx, put, cs, nil, index)
		}
	}
}

// sval is a string attribute of it, "" when absent or not a string.
func sval(it map[string]types.AttributeValue, name string) string {
	v, _ := getStr(it, name)
	return v
}

// raced reports a write of a change set that lost to another writer of it: its condition failed
// (errLost), or that of its environment's registry of unfinished change sets (errRegistry), or a
// transaction of the same items was under way; Update then starts again.
func raced(err error) bool {
	if errors.Is(err, errLost) || errors.Is(err, errRegistry) {
		return true
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			if aws.ToString(r.Code) == "TransactionConflict" {
				return true
			}
		}
		return false
	}
	var conflict *types.TransactionConflictException
	return errors.As(err, &conflict)
}

// putPointer writes one pointer unless a newer change set holds it.
func (s *ChangeSets) putPointer(ctx context.Context, p *types.Put) error {
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: p.TableName, Item: p.Item, ConditionExpression: p.ConditionExpression,
		ExpressionAttributeNames: p.ExpressionAttributeNames, ExpressionAttributeValues: p.ExpressionAttributeValues,
	})
	if isConditionFailed(err) {
		return nil
	}
	return err
}

// LastApplied returns the node of component in env's latest change set that applied it (its
// outcome recorded); nil when none did (changeset.AppliedReader). See the top of this file.
func (s *ChangeSets) LastApplied(ctx context.Context, env, component string) (*changeset.Node, error) {
	key := appliedKey(env, component)
	items, err := batchGet(ctx, s.client, s.table, []map[string]types.AttributeValue{
		{attrID: str(appliedMarker)}, {attrID: str(key)},
	})
	if err != nil {
		return nil, wrap("change set last applied", s.table, component, err)
	}
	var marker, pointer map[string]types.AttributeValue
	for _, it := range items {
		switch id, _ := getStr(it, attrID); id {
		case appliedMarker:
			marker = it
		case key:
			pointer = it
		}
	}
	complete := false
	if c, ok := marker[attrComplete].(*types.AttributeValueMemberBOOL); ok {
		complete = c.Value
	}
	if !complete {
		return s.lastAppliedFromList(ctx, env, component, true, marker)
	}
	if pointer == nil {
		return nil, nil // no change set applied it
	}
	id, err := getStr(pointer, attrAppliedCS)
	if err != nil {
		return nil, fmt.Errorf("dynamo: change set table %s: pointer of %s in %s: unreadable item: %w", s.table, component, env, err)
	}
	cs, err := s.Get(ctx, id)
	switch {
	case errors.Is(err, changeset.ErrNotFound): // deleted by hand: from List
	case err != nil:
		return nil, err
	case cs.Nodes[component] != nil && cs.Nodes[component].Outcome != nil:
		return cs.Nodes[component], nil
	}
	// Its outcome was taken away since (a retry): the one before it, from List.
	return s.lastAppliedFromList(ctx, env, component, false, nil)
}

// LastAppliedOf is LastApplied of each of components (changeset.AppliedBatchReader): the marker
// and the pointers in BatchGetItems of 100 keys, then each change set they name read once,
// however many of the components it applied.
func (s *ChangeSets) LastAppliedOf(ctx context.Context, env string, components []string) (map[string]*changeset.Node, error) {
	keys := []map[string]types.AttributeValue{{attrID: str(appliedMarker)}}
	of := map[string]string{} // pointer id -> component
	for _, c := range components {
		k := appliedKey(env, c)
		if _, dup := of[k]; !dup {
			of[k] = c
			keys = append(keys, map[string]types.AttributeValue{attrID: str(k)})
		}
	}
	items, err := batchGet(ctx, s.client, s.table, keys)
	if err != nil {
		return nil, wrap("change set last applied", s.table, env, err)
	}
	var marker map[string]types.AttributeValue
	by := map[string][]string{} // change set id -> the components it applied last
	for _, it := range items {
		id, _ := getStr(it, attrID)
		if id == appliedMarker {
			marker = it
			continue
		}
		c, ok := of[id]
		if !ok {
			continue
		}
		cs, err := getStr(it, attrAppliedCS)
		if err != nil {
			return nil, fmt.Errorf("dynamo: change set table %s: pointer of %s in %s: unreadable item: %w", s.table, c, env, err)
		}
		by[cs] = append(by[cs], c)
	}
	if c, ok := marker[attrComplete].(*types.AttributeValueMemberBOOL); !ok || !c.Value {
		all, err := s.List(ctx)
		if err != nil {
			return nil, err
		}
		s.backfill(ctx, all, marker)
		return changeset.LastApplied(ctx, listed{all: all}, env, components)
	}
	out := map[string]*changeset.Node{}
	var stale []string
	for id, comps := range by {
		cs, err := s.Get(ctx, id)
		if err != nil && !errors.Is(err, changeset.ErrNotFound) {
			return nil, err
		}
		for _, c := range comps {
			if err == nil && cs.Nodes[c] != nil && cs.Nodes[c].Outcome != nil {
				out[c] = cs.Nodes[c]
			} else {
				stale = append(stale, c) // its outcome taken away since (a retry)
			}
		}
	}
	if len(stale) > 0 {
		all, err := s.List(ctx)
		if err != nil {
			return nil, err
		}
		got, err := changeset.LastApplied(ctx, listed{all: all}, env, stale)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, got)
	}
	return out, nil
}

// listed is a change set store whose List gives all: changeset.LastApplied answers from it.
type listed struct {
	changeset.Store
	all []*changeset.ChangeSet
}

func (l listed) List(context.Context) ([]*changeset.ChangeSet, error) { return l.all, nil }

// lastAppliedFromList answers LastApplied from List; when fill, it backfills the pointers from
// that List and marks them complete (marker: the marker read before List, nil when none was).
func (s *ChangeSets) lastAppliedFromList(ctx context.Context, env, component string, fill bool, marker map[string]types.AttributeValue) (*changeset.Node, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	got, err := changeset.LastApplied(ctx, listed{all: all}, env, []string{component})
	if err != nil {
		return nil, err
	}
	if fill {
		s.backfill(ctx, all, marker)
	}
	return got[component], nil
}

// backfill writes a pointer for every component a change set of all applied (all newest first,
// as List gives them: the first seen of each is the one), then marks the pointers complete on
// condition that the marker is still as read before all was listed. Its failures are left for
// the next LastApplied to try again: the answer was taken from List.
func (s *ChangeSets) backfill(ctx context.Context, all []*changeset.ChangeSet, marker map[string]types.AttributeValue) {
	seen := map[[2]string]bool{}
	for _, cs := range all {
		at := appliedAt(cs)
		for _, c := range slices.Sorted(maps.Keys(cs.Applied())) {
			k := [2]string{cs.Env, c}
			if seen[k] {
				continue
			}
			seen[k] = true
			if err := s.putPointer(ctx, s.pointerPut(cs.Env, c, at, cs.ID)); err != nil {
				return
			}
		}
	}
	in := &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{attrID: str(appliedMarker), attrComplete: &types.AttributeValueMemberBOOL{Value: true},
			attrGen: str(""), attrUpdatedAt: str(now().UTC().Format(tsLayout))},
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	}
	if marker != nil {
		gen, err := getStr(marker, attrGen)
		if err != nil {
			return
		}
		in.Item[attrGen] = str(gen)
		in.ConditionExpression = aws.String("#g = :g")
		in.ExpressionAttributeNames = map[string]string{"#g": attrGen}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":g": str(gen)}
	}
	_, _ = s.client.PutItem(ctx, in)
}
