package dynamo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/changeset/changesettest"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/promotion"
)

// changeSetTable is the change set table in memory, for the conditions ChangeSets writes with
// (each known by its text) and the by-created index; it counts the operations. It lets the
// change set store's logic be tested without DynamoDB Local, which the conformance tests of
// changesets_test.go run it against.
type changeSetTable struct {
	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue
	ops   map[string]int
	read  int // items BatchGetItem returned
	// beforeMarker, when set, runs (once) before a PutItem of the pointers' marker.
	beforeMarker func()
	// beforeTransact, when set, runs (once) before a TransactWriteItems.
	beforeTransact func()
	// index, when set, is what the by-created index serves: the items as they were when it
	// stopped catching up (freezeIndex), as DynamoDB's, eventually consistent, may lag.
	index map[string]map[string]types.AttributeValue
	// midBatch, when set, makes the next BatchGetItem read its keys from the last to the first
	// and run it (once) after reading the first of them (DynamoDB reads a batch's keys in no
	// order, and not at one instant).
	midBatch func()
	// unfinishedLags, when set, makes the queries of an environment's part of the partition
	// "unfinished" (Unfinished's) find nothing, as an index that has not caught up at all.
	unfinishedLags bool
}

// freezeIndex makes the by-created index lag: it serves the items as they are now until
// thawIndex.
func (f *changeSetTable) freezeIndex() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = maps.Clone(f.items)
}

func (f *changeSetTable) thawIndex() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = nil
}

func newChangeSetTable() *changeSetTable {
	return &changeSetTable{items: map[string]map[string]types.AttributeValue{}, ops: map[string]int{}}
}

func (f *changeSetTable) count(op string) { f.ops[op]++ }

func (f *changeSetTable) reset() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.ops
	f.ops = map[string]int{}
	return old
}

// holds reports whether the condition of a write of item holds on the stored one.
func (f *changeSetTable) holds(cond *string, names map[string]string, values map[string]types.AttributeValue, item map[string]types.AttributeValue) bool {
	old, ok := f.items[sval(item, attrID)]
	switch c := aws.ToString(cond); c {
	case "":
		return true
	case "attribute_not_exists(#id)":
		return !ok
	case "#v = :v":
		v, _ := getNum(old, attrVersion)
		w, _ := getNum(values, ":v")
		return ok && v == w
	case "#g = :g":
		v, err := getStr(old, attrGen)
		w, _ := getStr(values, ":g")
		return ok && err == nil && v == w
	case "attribute_not_exists(#id) OR #at < :at OR (#at = :at AND #cs >= :cs)":
		at, cs := sval(old, attrAppliedCreated), sval(old, attrAppliedCS)
		nat, ncs := sval(values, ":at"), sval(values, ":cs")
		return !ok || at < nat || at == nat && cs >= ncs
	default:
		panic("changeSetTable: condition " + c)
	}
}

func (f *changeSetTable) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("GetItem")
	return &dynamodb.GetItemOutput{Item: f.items[sval(in.Key, attrID)]}, nil
}

func (f *changeSetTable) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if run := f.beforeMarker; run != nil && sval(in.Item, attrID) == appliedMarker {
		f.beforeMarker = nil
		run()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("PutItem")
	if !f.holds(in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.Item) {
		return nil, &types.ConditionalCheckFailedException{Message: aws.String("condition")}
	}
	f.items[sval(in.Item, attrID)] = in.Item
	return &dynamodb.PutItemOutput{}, nil
}

func (f *changeSetTable) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("DeleteItem")
	delete(f.items, sval(in.Key, attrID))
	return &dynamodb.DeleteItemOutput{}, nil
}

func (f *changeSetTable) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("Query")
	if aws.ToString(in.IndexName) != IndexCreated {
		return nil, fmt.Errorf("changeSetTable: query of %q", aws.ToString(in.IndexName))
	}
	var out []map[string]types.AttributeValue
	served := f.items
	if f.index != nil {
		served = f.index
	}
	for _, it := range served {
		if sval(it, attrKind) == sval(in.ExpressionAttributeValues, ":k") {
			out = append(out, map[string]types.AttributeValue{attrID: it[attrID], attrKind: it[attrKind], attrCreated: it[attrCreated]})
		}
	}
	slices.SortFunc(out, func(a, b map[string]types.AttributeValue) int {
		return strings.Compare(sval(b, attrCreated), sval(a, attrCreated))
	})
	if _, ok := in.ExpressionAttributeValues[":p"]; ok && f.unfinishedLags && sval(in.ExpressionAttributeValues, ":k") == kindUnfinished {
		out = nil
	}
	if p, ok := in.ExpressionAttributeValues[":p"]; ok { // begins_with(#c, :p)
		out = slices.DeleteFunc(out, func(it map[string]types.AttributeValue) bool {
			return !strings.HasPrefix(sval(it, attrCreated), p.(*types.AttributeValueMemberS).Value)
		})
	}
	if start := sval(in.ExclusiveStartKey, attrCreated); start != "" {
		out = slices.DeleteFunc(out, func(it map[string]types.AttributeValue) bool { return sval(it, attrCreated) >= start })
	}
	if limit := int(aws.ToInt32(in.Limit)); limit > 0 && len(out) >= limit {
		// As DynamoDB: a page that reached the limit names where the next starts, even when
		// nothing is left.
		out = out[:limit]
		return &dynamodb.QueryOutput{Items: out, LastEvaluatedKey: out[limit-1]}, nil
	}
	return &dynamodb.QueryOutput{Items: out}, nil
}

func (f *changeSetTable) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("BatchGetItem")
	out := map[string][]map[string]types.AttributeValue{}
	mid := f.midBatch
	f.midBatch = nil
	for table, ka := range in.RequestItems {
		keys := ka.Keys
		if mid != nil {
			keys = slices.Clone(keys)
			slices.Reverse(keys)
		}
		for _, k := range keys {
			if it, ok := f.items[sval(k, attrID)]; ok {
				out[table] = append(out[table], it)
				f.read++
			}
			if mid != nil {
				f.mu.Unlock()
				mid()
				mid = nil
				f.mu.Lock()
			}
		}
	}
	return &dynamodb.BatchGetItemOutput{Responses: out}, nil
}

func (f *changeSetTable) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if run := f.beforeTransact; run != nil {
		f.beforeTransact = nil
		run()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("TransactWriteItems")
	if len(in.TransactItems) > maxTransactItems {
		return nil, fmt.Errorf("changeSetTable: %d actions in a transaction", len(in.TransactItems))
	}
	reasons := make([]types.CancellationReason, len(in.TransactItems))
	failed := false
	for i, it := range in.TransactItems {
		reasons[i].Code = aws.String("None")
		if p := it.Put; p != nil && !f.holds(p.ConditionExpression, p.ExpressionAttributeNames, p.ExpressionAttributeValues, p.Item) {
			reasons[i].Code, failed = aws.String("ConditionalCheckFailed"), true
		}
	}
	if failed {
		return nil, &types.TransactionCanceledException{Message: aws.String("cancelled"), CancellationReasons: reasons}
	}
	for _, it := range in.TransactItems {
		if it.Put == nil { // the functions may put items of the table, no more (terraform/iam.tf)
			return nil, fmt.Errorf("changeSetTable: transaction action %+v", it)
		}
		f.items[sval(it.Put.Item, attrID)] = it.Put.Item
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

func TestChangeSetsConformanceInMemory(t *testing.T) {
	s := NewChangeSets(newChangeSetTable(), "change-sets", ChangeSetOptions{Settle: -1})
	changesettest.Run(t, func(t *testing.T) changeset.Store { return s })
}

// The conformance suite while the index never shows an environment's unfinished change sets to
// Unfinished: the registries alone answer, through the change sets' lives (created, finished,
// started again).
func TestChangeSetsConformanceIndexLaggingInMemory(t *testing.T) {
	f := newChangeSetTable()
	f.unfinishedLags = true
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	changesettest.Run(t, func(t *testing.T) changeset.Store { return s })
}

func TestChangeSetsLastAppliedUpgradeInMemory(t *testing.T) {
	changesettest.RunUpgrade(t, func(t *testing.T) (changeset.Store, func(t *testing.T) changeset.Store) {
		f := newChangeSetTable()
		return NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1}), func(t *testing.T) changeset.Store {
			f.mu.Lock()
			defer f.mu.Unlock()
			n := 0
			for id := range f.items {
				if strings.HasPrefix(id, appliedPrefix) {
					delete(f.items, id)
					n++
				}
			}
			if n == 0 {
				t.Fatal("no pointer of a deployment applied last in the table")
			}
			return NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
		}
	})
}

// LastApplied reads the marker and the pointer, and the change set it names: not every change
// set of the table (a Query of them all and a BatchGetItem of each, on every call, before).
func TestChangeSetsLastAppliedReadsOneChangeSetInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	const comp, never = "dev/service/component-0000", "dev/service/component-0001"
	for i := range 30 {
		cs := changesettest.Sample(fmt.Sprintf("reads-%02d", i), 2)
		cs.CreatedAt = cs.CreatedAt.Add(time.Duration(i) * time.Minute)
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
		if i == 3 {
			if _, err := s.Update(ctx, cs.ID, func(cs *changeset.ChangeSet) error {
				cs.Nodes[comp].Outcome = &changeset.Outcome{RuntimeVersion: 3}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first call on a table without the marker lists the change sets once and backfills.
	if _, err := changeset.LastApplied(ctx, s, "dev", []string{comp}); err != nil {
		t.Fatal(err)
	}
	f.reset()
	got, err := changeset.LastApplied(ctx, s, "dev", []string{comp})
	if n := got[comp]; err != nil || n == nil || n.Outcome.RuntimeVersion != 3 {
		t.Fatalf("LastApplied(%s) = %+v, %v; want the node of reads-03", comp, n, err)
	}
	if ops := f.reset(); ops["BatchGetItem"] != 1 || ops["GetItem"] != 1 || len(ops) != 2 {
		t.Errorf("LastApplied of a component applied: %v; want one BatchGetItem (marker and pointer) and one GetItem (its change set)", ops)
	}
	if got, err := changeset.LastApplied(ctx, s, "dev", []string{never}); err != nil || got[never] != nil {
		t.Fatalf("LastApplied(%s) = %+v, %v; want none", never, got[never], err)
	}
	if ops := f.reset(); ops["BatchGetItem"] != 1 || len(ops) != 1 {
		t.Errorf("LastApplied of a component never applied: %v; want one BatchGetItem", ops)
	}
}

// More outcomes recorded at once than a transaction holds: the pointers are marked incomplete
// with the change set; LastApplied answers from List, backfills, and then from the pointers,
// even when a pointer written after the transaction was lost.
func TestChangeSetsLastAppliedManyOutcomesInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	older := changesettest.Sample("many-older", 150)
	for _, n := range older.Nodes {
		n.Outcome = &changeset.Outcome{RuntimeVersion: 1}
	}
	if created, err := s.Create(ctx, older); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	comps := slices.Sorted(maps.Keys(older.Nodes))
	if _, err := changeset.LastApplied(ctx, s, "dev", comps[:1]); err != nil { // backfills
		t.Fatal(err)
	}
	newer := changesettest.Sample("many-newer", 150)
	newer.CreatedAt = newer.CreatedAt.Add(time.Hour)
	if created, err := s.Create(ctx, newer); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	if _, err := s.Update(ctx, newer.ID, func(cs *changeset.ChangeSet) error {
		for _, n := range cs.Nodes {
			n.Outcome = &changeset.Outcome{RuntimeVersion: 2}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The pointer written last, after the transaction, lost (the process ended there).
	f.mu.Lock()
	delete(f.items, appliedKey("dev", comps[len(comps)-1]))
	f.mu.Unlock()
	for range 2 { // from List (backfilling), then from the pointers
		got, err := changeset.LastApplied(ctx, s, "dev", comps)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range comps {
			if n := got[c]; n == nil || n.Outcome.RuntimeVersion != 2 {
				t.Fatalf("LastApplied(%s) = %+v; want the node of many-newer", c, n)
			}
		}
	}
	f.reset()
	if _, err := changeset.LastApplied(ctx, s, "dev", comps[:1]); err != nil {
		t.Fatal(err)
	}
	if ops := f.reset(); ops["Query"] != 0 {
		t.Errorf("LastApplied once the pointers are backfilled: %v; want no Query", ops)
	}
}

// A write marking the pointers incomplete while LastApplied backfills them from a List read
// before it: the backfill does not mark them complete.
func TestChangeSetsLastAppliedBackfillRacesInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	older := changesettest.Sample("race-older", 150)
	for _, n := range older.Nodes {
		n.Outcome = &changeset.Outcome{RuntimeVersion: 1}
	}
	newer := changesettest.Sample("race-newer", 150)
	newer.CreatedAt = newer.CreatedAt.Add(time.Hour)
	for _, cs := range []*changeset.ChangeSet{older, newer} {
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
	}
	comps := slices.Sorted(maps.Keys(older.Nodes))
	last := comps[len(comps)-1]
	f.beforeMarker = func() {
		if _, err := s.Update(ctx, newer.ID, func(cs *changeset.ChangeSet) error {
			for _, n := range cs.Nodes {
				n.Outcome = &changeset.Outcome{RuntimeVersion: 2}
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		f.mu.Lock()
		delete(f.items, appliedKey("dev", last)) // written after the transaction, and lost
		f.mu.Unlock()
	}
	if got, err := changeset.LastApplied(ctx, s, "dev", []string{comps[0]}); err != nil || got[comps[0]] == nil {
		t.Fatalf("LastApplied(%s) = %v, %v", comps[0], got, err)
	}
	if got, err := changeset.LastApplied(ctx, s, "dev", []string{last}); err != nil || got[last] == nil || got[last].Outcome.RuntimeVersion != 2 {
		t.Fatalf("LastApplied(%s) = %+v, %v; want the node of race-newer", last, got[last], err)
	}
}

// The components of a change set asked at once (resolve's policy check): the pointers in one
// BatchGetItem and each change set they name read once, not two reads per component.
func TestChangeSetsLastAppliedOfManyInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	cs := changesettest.Sample("batch", 60)
	for _, n := range cs.Nodes {
		n.Outcome = &changeset.Outcome{RuntimeVersion: 4}
	}
	if created, err := s.Create(ctx, cs); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	comps := append(slices.Sorted(maps.Keys(cs.Nodes)), "dev/service/never")
	if _, err := changeset.LastApplied(ctx, s, "dev", comps[:1]); err != nil { // backfills
		t.Fatal(err)
	}
	f.reset()
	got, err := changeset.LastApplied(ctx, s, "dev", comps)
	if err != nil || len(got) != 60 {
		t.Fatalf("LastApplied of %d components: %d found, %v; want 60", len(comps), len(got), err)
	}
	if ops := f.reset(); ops["BatchGetItem"] != 1 || ops["GetItem"] != 1 || len(ops) != 2 {
		t.Errorf("LastApplied of 61 components, 60 applied by one change set: %v; want one BatchGetItem and one GetItem", ops)
	}
}

// The pointers and the items of the unfinished change sets share the table with the change sets:
// no change set can take their ids, and none of them is a change set to Get.
func TestChangeSetsPointerIDsAreReservedInMemory(t *testing.T) {
	s := NewChangeSets(newChangeSetTable(), "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	cs := changesettest.Sample("reserved", 2)
	cs.Nodes["dev/service/component-0000"].Outcome = &changeset.Outcome{RuntimeVersion: 1}
	if _, err := s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if _, err := changeset.LastApplied(ctx, s, "dev", []string{"dev/service/component-0000"}); err != nil { // the marker
		t.Fatal(err)
	}
	if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil { // the marker of the unfinished
		t.Fatal(err)
	}
	for _, id := range []string{appliedMarker, appliedKey("dev", "dev/service/component-0000"), unfinishedMarker, unfinishedKey(cs.ID)} {
		taken := changesettest.Sample(id, 2)
		var invalid *ValidationError
		if created, err := s.Create(ctx, taken); !errors.As(err, &invalid) || created {
			t.Errorf("Create(%s) = %v, %v; want a ValidationError", id, created, err)
		}
		if _, err := s.Get(ctx, id); !errors.Is(err, changeset.ErrNotFound) {
			t.Errorf("Get(%s) = %v; want ErrNotFound", id, err)
		}
	}
	if got, err := changeset.LastApplied(ctx, s, "dev", []string{"dev/service/component-0000"}); err != nil || got["dev/service/component-0000"] == nil {
		t.Errorf("LastApplied after: %v, %v", got, err)
	}
}

// A table written before the items of the unfinished change sets and of those with promotion
// work: Unfinished and Promoting answer from List and backfill them.
func TestChangeSetsListingsUpgradeInMemory(t *testing.T) {
	changesettest.RunListingsUpgrade(t, func(t *testing.T) (changeset.Store, func(t *testing.T) changeset.Store) {
		f := newChangeSetTable()
		return NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1}), func(t *testing.T) changeset.Store {
			f.mu.Lock()
			defer f.mu.Unlock()
			n := 0
			for id := range f.items {
				if strings.HasPrefix(id, unfinishedPrefix) || strings.HasPrefix(id, promotingPrefix) {
					delete(f.items, id)
					n++
				}
			}
			if n == 0 {
				t.Fatal("no item of an unfinished change set or one with promotion work in the table")
			}
			return NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
		}
	})
}

// The ordering's question on a table of 300 change sets, 3 of them unfinished: the items of the
// unfinished ones are read, not every change set (a Query of them all and a BatchGetItem of
// every document, on every change set resolve creates or finishes, before), and a change set
// drops out of the answer in the write that finishes it.
func TestChangeSetsUnfinishedReadsOnlyUnfinishedInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil { // the marker
		t.Fatal(err)
	}
	const comp = "dev/service/component-0000"
	for i := range 300 {
		cs := changesettest.Sample(fmt.Sprintf("history-%03d", i), 2)
		cs.CreatedAt = cs.CreatedAt.Add(time.Duration(i) * time.Minute)
		if i < 297 {
			for _, n := range cs.Nodes {
				n.State = changeset.Applied
			}
		}
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
	}
	f.reset()
	f.read = 0
	got, err := changeset.Unfinished(ctx, s, "dev", []string{comp})
	if err != nil || len(got) != 3 || got[0].ID != "history-299" || !slices.Equal(got[0].Components, []string{comp}) {
		t.Fatalf("Unfinished = %+v, %v; want history-299, -298 and -297", got, err)
	}
	if ops := f.reset(); ops["Query"] != 1 || ops["BatchGetItem"] != 1 || len(ops) != 2 || f.read != 5 {
		t.Errorf("Unfinished: %v, %d items read; want one Query and one BatchGetItem of 5 items (the marker, the registry and the 3 unfinished)", ops, f.read)
	}
	if _, err := s.Update(ctx, "history-299", func(cs *changeset.ChangeSet) error {
		for _, n := range cs.Nodes {
			n.State = changeset.Skipped
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := changeset.Unfinished(ctx, s, "dev", []string{comp}); err != nil || len(got) != 2 || got[0].ID != "history-298" {
		t.Errorf("Unfinished once history-299 is done = %+v, %v; want history-298 and -297", got, err)
	}
}

// More outcomes recorded at once than a transaction holds while a newer change set holds one of
// their pointers: the change set is written, that pointer left out (the write failed, taking
// the marker of incomplete pointers for a pointer kept).
func TestChangeSetsManyOutcomesOnePointerHeldInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	older, newer := changesettest.Sample("held-older", 150), changesettest.Sample("held-newer", 150)
	newer.CreatedAt = newer.CreatedAt.Add(time.Hour)
	for _, cs := range []*changeset.ChangeSet{older, newer} {
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
	}
	comps := slices.Sorted(maps.Keys(older.Nodes))
	held := comps[0]
	if _, err := s.Update(ctx, newer.ID, func(cs *changeset.ChangeSet) error {
		cs.Nodes[held].Outcome = &changeset.Outcome{RuntimeVersion: 2}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, older.ID, func(cs *changeset.ChangeSet) error {
		for _, n := range cs.Nodes {
			n.Outcome = &changeset.Outcome{RuntimeVersion: 1}
		}
		return nil
	}); err != nil {
		t.Fatalf("Update recording 150 outcomes, one pointer held by a newer change set: %v", err)
	}
	got, err := changeset.LastApplied(ctx, s, "dev", comps)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range comps {
		want := int64(1)
		if c == held {
			want = 2
		}
		if n := got[c]; n == nil || n.Outcome.RuntimeVersion != want {
			t.Fatalf("LastApplied(%s) = %+v; want runtime version %d", c, n, want)
		}
	}
}

// The check for due promotions (every minute) on a table of 300 change sets promoted long ago:
// it reads the change sets with promotion work, not every change set (a Query of them all and a
// BatchGetItem of every document, at every check, before), and publishes what the change sets
// seen through List alone would; while a held try waits it reads them all, as before.
func TestChangeSetsPromotingInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	if _, err := s.Promoting(ctx); err != nil { // the marker
		t.Fatal(err)
	}
	at := changesettest.Sample("x", 0).CreatedAt
	for i := range 300 {
		cs := changesettest.Sample(fmt.Sprintf("promoted-%03d", i), 0)
		cs.CreatedAt = at.Add(time.Duration(i) * time.Minute)
		cs.Promotion = &changeset.Promotion{Next: "prod", DueAt: cs.CreatedAt, PromotedAt: cs.CreatedAt.Add(time.Minute)}
		if i == 299 {
			cs.Promotion.PromotedAt = time.Time{} // due
		}
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
	}
	now := at.Add(24 * time.Hour)
	var published []string
	publish := func(_ context.Context, msgs ...message.Envelope) error {
		for _, m := range msgs {
			published = append(published, m.IdempotencyKey)
		}
		return nil
	}
	f.reset()
	started, err := promotion.Start(ctx, s, publish, now)
	if err != nil || len(started) != 1 || started[0].From != "promoted-299" || len(published) != 1 {
		t.Fatalf("Start = %+v, %v (published %v); want promoted-299 promoted", started, err, published)
	}
	if ops := f.reset(); ops["Query"] != 1 || ops["BatchGetItem"] != 1 {
		t.Errorf("Start: %v; want one Query and one BatchGetItem (and the update of the one promoted)", ops)
	}
	if started, err := promotion.Start(ctx, s, publish, now); err != nil || len(started) != 0 {
		t.Fatalf("Start again = %+v, %v; want nothing", started, err)
	}
	if ops := f.reset(); ops["Query"] != 1 || ops["BatchGetItem"] != 1 || len(ops) != 2 {
		t.Errorf("Start with nothing due: %v; want one Query and one BatchGetItem", ops)
	}
	// A held try of promoted-298's promotion, held on what dev was then; dev moved since.
	src, err := s.Get(ctx, "promoted-298")
	if err != nil {
		t.Fatal(err)
	}
	held := changesettest.Sample(src.NextChangeSetID(), 0)
	held.Env, held.CreatedAt = "prod", now
	held.Held = &changeset.Hold{Reason: "prod moved", Attempt: 1, Waiting: []string{"dev"}, On: "before"}
	if created, err := s.Create(ctx, held); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	for name, st := range map[string]promotion.Store{"store": s, "list": onlyList{s}} {
		published = nil
		started, err := promotion.Start(ctx, st, publish, now)
		if err != nil || len(started) != 1 || started[0].From != "promoted-298" || started[0].Attempt != 2 {
			t.Errorf("Start (%s) with a held try waiting = %+v, %v; want its second try", name, started, err)
		}
	}
}

// onlyList is a change set store seen through changeset.Store alone.
type onlyList struct{ changeset.Store }

// Resolve compares every pushed commit with the commits of the environment's latest change sets
// (changeset.EachCommit): they are read from the newest change set backwards, a page at a time,
// not every change set of the table (List, at every push, before); and in List's order, of equal
// creation times the smaller id first, also where such a time spans two pages.
func TestChangeSetsCommitsReadTheNewestInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	at := changesettest.Sample("x", 0).CreatedAt
	var want []string // newest first
	for i := range 300 {
		cs := changesettest.Sample(fmt.Sprintf("cs-%03d", i), 0)
		cs.CreatedAt, cs.Commit = at.Add(time.Duration(i)*time.Minute), fmt.Sprintf("%040x", i)
		if i >= 20 && i < 120 { // 100 change sets at one time: over a page boundary
			cs.CreatedAt = at.Add(20 * time.Minute)
		}
		if i%3 == 0 {
			cs.Env = "prod"
		}
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range all {
		if cs.Env == "dev" {
			want = append(want, cs.Commit)
		}
	}
	var got []string
	err = changeset.EachCommit(ctx, s, "dev", func(c string) (bool, error) { got = append(got, c); return true, nil })
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("EachCommit = %d commits, %v; want the %d of List's order:\n got %v\nwant %v", len(got), err, len(want), got, want)
	}
	f.reset()
	f.read = 0
	got = nil
	err = changeset.EachCommit(ctx, s, "dev", func(c string) (bool, error) { got = append(got, c); return len(got) < 10, nil })
	if err != nil || !slices.Equal(got, want[:10]) {
		t.Fatalf("EachCommit of the latest 10 = %v, %v; want %v", got, err, want[:10])
	}
	// A page of commits (64) is asked of the store: the first 99 change sets of the table hold
	// 66 of dev's (the last of the page's 100 waits for the next page, which may have more of
	// its time).
	if ops := f.reset(); ops["Query"] != 1 || ops["BatchGetItem"] != 1 || f.read != 99 {
		t.Errorf("EachCommit of the latest 10: %v, %d change sets read; want one Query and one BatchGetItem of 99", ops, f.read)
	}
}

// The expiry's sweep (every minute in karma serve) on a table of 300 change sets, 2 of them not
// done: it reads those 2, not every change set (List, at every sweep, before), and expires the
// one past its approval expiry.
func TestChangeSetsSweepReadsOnlyUnfinishedInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	if _, err := s.UnfinishedSets(ctx); err != nil { // the marker
		t.Fatal(err)
	}
	at := changesettest.Sample("x", 0).CreatedAt
	for i := range 300 {
		cs := changesettest.Sample(fmt.Sprintf("sweep-%03d", i), 2)
		cs.CreatedAt, cs.ExpiresAt = at.Add(time.Duration(i)*time.Minute), at.Add(time.Hour)
		if i == 299 {
			cs.ExpiresAt = at.Add(48 * time.Hour)
		}
		if i < 298 {
			for _, n := range cs.Nodes {
				n.State = changeset.Applied
			}
		}
		if created, err := s.Create(ctx, cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
	}
	f.reset()
	f.read = 0
	now := func() time.Time { return at.Add(24 * time.Hour) }
	msgs, err := changeset.Sweep(ctx, s, now)
	if err != nil || len(msgs) != 1 || !strings.HasSuffix(msgs[0].IdempotencyKey, "sweep-298") {
		t.Fatalf("Sweep = %d messages, %v; want sweep-298 expired", len(msgs), err)
	}
	if ops := f.reset(); ops["Query"] != 1 || ops["BatchGetItem"] != 1 || len(ops) != 2 || f.read != 3 {
		t.Errorf("Sweep: %v, %d items read; want one Query and one BatchGetItem of 3 (the marker, the 2 not done)", ops, f.read)
	}
	if listed, err := changeset.Sweep(ctx, onlyList{s}, now); err != nil || len(listed) != 1 || listed[0].IdempotencyKey != msgs[0].IdempotencyKey {
		t.Errorf("Sweep from List = %v, %v; want the same message", listed, err)
	}
}

// A function of a version from before the items, still running when the marker was put (the
// functions are updated one by one), creates a change set without its item: for an hour after
// the marker, the answers come from List, and backfill its item; then from the items, which
// have it.
func TestChangeSetsUnfinishedSettleInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{})
	ctx := t.Context()
	const comp = "dev/service/component-0000"
	if _, err := changeset.Unfinished(ctx, s, "dev", []string{comp}); err != nil { // the marker
		t.Fatal(err)
	}
	old := changesettest.Sample("written-by-an-older-version", 2)
	if created, err := s.Create(ctx, old); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	f.mu.Lock()
	delete(f.items, unfinishedKey(old.ID)) // as a version from before the items wrote it
	f.mu.Unlock()
	got, err := changeset.Unfinished(ctx, s, "dev", []string{comp})
	if err != nil || len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("Unfinished within the hour = %+v, %v; want %s, from List", got, err, old.ID)
	}
	// An hour later, from the items.
	f.mu.Lock()
	f.items[unfinishedMarker][attrUpdatedAt] = str(now().Add(-61 * time.Minute).UTC().Format(tsLayout))
	f.mu.Unlock()
	f.reset()
	got, err = changeset.Unfinished(ctx, s, "dev", []string{comp})
	if err != nil || len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("Unfinished after the hour = %+v, %v; want %s, from its backfilled item", got, err, old.ID)
	}
	if ops := f.reset(); ops["BatchGetItem"] != 1 || ops["Query"] != 1 || len(ops) != 2 {
		t.Errorf("Unfinished after the hour: %v; want one Query and one BatchGetItem", ops)
	}
}

// The ordering's question while the by-created index has not caught up (DynamoDB keeps it
// eventually consistent, and the queues are not FIFO: two resolves may create change sets of
// one environment at once, or back to back within the index's lag): a change set created
// a moment ago is seen, one created while another's create was being written too (both Put the
// environment's registry, and the one that lost reads it again), and one finished a moment ago
// drops out, while another is created — answered from the items, and from List before the marker has settled.
func TestChangeSetsUnfinishedSeesPastTheIndexLagInMemory(t *testing.T) {
	for name, settle := range map[string]time.Duration{"from the items": -1, "from List": time.Hour} {
		t.Run(name, func(t *testing.T) {
			f := newChangeSetTable()
			s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: settle})
			ctx := t.Context()
			if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil { // the marker
				t.Fatal(err)
			}
			comps := slices.Sorted(maps.Keys(changesettest.Sample("x", 2).Nodes))
			create := func(id string, minutes int) {
				t.Helper()
				cs := changesettest.Sample(id, 2)
				cs.CreatedAt = cs.CreatedAt.Add(time.Duration(minutes) * time.Minute)
				if created, err := s.Create(ctx, cs); err != nil || !created {
					t.Fatalf("Create %s: %v, %v", id, created, err)
				}
			}
			want := func(what string, ids ...string) {
				t.Helper()
				got, err := changeset.Unfinished(ctx, s, "dev", comps)
				if err != nil {
					t.Fatal(err)
				}
				var gotIDs []string
				for _, q := range got {
					gotIDs = append(gotIDs, q.ID)
				}
				if !slices.Equal(gotIDs, ids) {
					t.Errorf("%s: Unfinished = %v; want %v", what, gotIDs, ids)
				}
			}
			create("old", 0)
			f.freezeIndex() // from here on the index shows "old" alone
			create("a", 1)
			want("a created a moment ago", "a", "old")
			f.beforeTransact = func() { create("c", 3) } // c's create written while b's is on its way
			create("b", 2)
			want("b and c created at once", "c", "b", "a", "old")
			f.beforeTransact = func() { create("d", 4) } // d's create written while a's end is on its way
			if _, err := s.Update(ctx, "a", func(cs *changeset.ChangeSet) error {
				for _, n := range cs.Nodes {
					n.State = changeset.Applied
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want("a finished a moment ago, d created at once", "d", "c", "b", "old")
			f.thawIndex()
			want("the index caught up", "d", "c", "b", "old")
		})
	}
}

// A change set the registry names, finished by a function of a version from before the
// registry (its item put done, the registry not written): the answer drops it and takes it out
// of the registry, so that the next answer is again a Query and a BatchGetItem.
func TestChangeSetsUnfinishedRegistryPrunedInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil { // the marker
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if created, err := s.Create(ctx, changesettest.Sample(id, 2)); err != nil || !created {
			t.Fatalf("Create %s: %v, %v", id, created, err)
		}
	}
	f.mu.Lock()
	f.items[unfinishedKey("a")] = s.unfinishedPut("a", queueEntry{env: "dev", done: true}).Item
	f.mu.Unlock()
	for i, want := range []int{4, 2} { // a Query, two BatchGetItems and the prune's PutItem; then a Query and a BatchGetItem
		f.reset()
		got, err := changeset.Unfinished(ctx, s, "dev", nil)
		if err != nil || len(got) != 1 || got[0].ID != "b" {
			t.Fatalf("Unfinished = %+v, %v; want b", got, err)
		}
		ops := f.reset()
		if n := ops["Query"] + ops["BatchGetItem"] + ops["PutItem"]; n != want || len(ops) > 3 {
			t.Errorf("answer %d: %v; want %d requests", i+1, ops, want)
		}
	}
	f.mu.Lock()
	_, ids, err := registryIDs(f.items[registryKey("dev")])
	f.mu.Unlock()
	if err != nil || !slices.Equal(ids, []string{"b"}) {
		t.Errorf("registry names %v, %v; want b alone", ids, err)
	}
}

// A change set done when the answer read its item and started again (a retry) before it read the
// registry, which then names it: the answer does not take it out of the registry, which would
// hide it from the next answers while the index lags.
func TestChangeSetsUnfinishedRegistryNotPrunedOfARestartInMemory(t *testing.T) {
	f := newChangeSetTable()
	s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil { // the marker
		t.Fatal(err)
	}
	if created, err := s.Create(ctx, changesettest.Sample("x", 2)); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	f.freezeIndex() // it shows x unfinished
	state := func(st string) {
		t.Helper()
		if _, err := s.Update(ctx, "x", func(cs *changeset.ChangeSet) error {
			for _, n := range cs.Nodes {
				n.State = st
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	state(changeset.Applied)
	f.midBatch = func() { state(changeset.Scheduled) } // x's item read done, then x started again
	if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	_, ids, err := registryIDs(f.items[registryKey("dev")])
	f.mu.Unlock()
	if err != nil || !slices.Equal(ids, []string{"x"}) {
		t.Errorf("registry names %v, %v; want x", ids, err)
	}
}

// Two resolves of one environment (the queues are not FIFO) each look at the unfinished change
// sets before either creates: the second create, whose look missed the first, must not start
// beside it — it refuses (changeset.ErrLookedTooEarly), and created after a second look it is
// ordered behind the first. Whether the first's create comes before the second's registry read
// or between that read and the second's transaction. A change set created since that shares
// nothing, or is of another environment, does not refuse it; nor is anything more read when
// the registry names nothing the look did not find.
func TestChangeSetsCreateAfterLookSeesACreateSinceTheLookInMemory(t *testing.T) {
	for _, between := range []string{"before the registry read", "between the registry read and the transaction"} {
		t.Run(between, func(t *testing.T) {
			f := newChangeSetTable()
			s := NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
			ctx := t.Context()
			sample := func(id string, minutes int) *changeset.ChangeSet {
				cs := changesettest.Sample(id, 2)
				cs.CreatedAt = cs.CreatedAt.Add(time.Duration(minutes) * time.Minute)
				return cs
			}
			look := func(cs *changeset.ChangeSet) []string {
				t.Helper()
				got, err := changeset.Unfinished(ctx, s, cs.Env, slices.Sorted(maps.Keys(cs.Nodes)))
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, q := range got {
					ids = append(ids, q.ID)
				}
				return ids
			}
			first, second := sample("first", 1), sample("second", 2)
			lookedFirst, lookedSecond := look(first), look(second)
			if len(lookedFirst)+len(lookedSecond) != 0 {
				t.Fatalf("looks = %v, %v; want none", lookedFirst, lookedSecond)
			}
			f.reset()
			if created, err := s.CreateAfterLook(ctx, first, lookedFirst); err != nil || !created {
				t.Fatalf("CreateAfterLook(first) = %v, %v", created, err)
			}
			if ops := f.reset(); ops["GetItem"] != 1 || ops["TransactWriteItems"] != 1 || len(ops) != 2 {
				t.Errorf("CreateAfterLook with nothing registered since: %v; want a GetItem and a TransactWriteItems, as Create", ops)
			}
			// unrelated change sets created since the second's look: another environment's, and
			// one of the same sharing no component
			elsewhere := sample("elsewhere", 3)
			elsewhere.Env = "prod"
			apart := changesettest.Sample("apart", 0)
			apart.Nodes["dev/other/x"] = &changeset.Node{Component: "dev/other/x", State: changeset.Pending}
			for _, cs := range []*changeset.ChangeSet{elsewhere, apart} {
				if created, err := s.Create(ctx, cs); err != nil || !created {
					t.Fatalf("Create(%s) = %v, %v", cs.ID, created, err)
				}
			}
			third := sample("third", 4)
			f.reset()
			if created, err := s.CreateAfterLook(ctx, third, []string{"first"}); err != nil || !created {
				t.Fatalf("CreateAfterLook(third), sharing nothing new = %v, %v", created, err)
			}
			if ops := f.reset(); ops["GetItem"] != 1 || ops["BatchGetItem"] != 1 || ops["TransactWriteItems"] != 1 || len(ops) != 3 {
				t.Errorf("CreateAfterLook with one change set registered the look did not find: %v; want a GetItem, a BatchGetItem of its item and a TransactWriteItems", ops)
			}
			if between != "before the registry read" {
				// the first is created again, as it were, by another id, on the second's way
				f.items = map[string]map[string]types.AttributeValue{}
				s = NewChangeSets(f, "change-sets", ChangeSetOptions{Settle: -1})
				if lookedSecond = look(second); len(lookedSecond) != 0 {
					t.Fatal(lookedSecond)
				}
				f.beforeTransact = func() {
					if created, err := s.CreateAfterLook(ctx, first, nil); err != nil || !created {
						t.Errorf("CreateAfterLook(first) = %v, %v", created, err)
					}
				}
			}
			created, err := s.CreateAfterLook(ctx, second, lookedSecond)
			if !errors.Is(err, changeset.ErrLookedTooEarly) || created {
				t.Fatalf("CreateAfterLook(second), its look before the first's create = %v, %v; want %v", created, err, changeset.ErrLookedTooEarly)
			}
			if !strings.Contains(err.Error(), "first") {
				t.Errorf("error %q does not name the change set created since", err)
			}
			if _, err := s.Get(ctx, "second"); !errors.Is(err, changeset.ErrNotFound) {
				t.Fatalf("second after a refused create: %v; want not found", err)
			}
			// resolve looks again, and is ordered behind the first
			lookedSecond = look(second)
			second.OrderAfter([]changeset.Queued{{ID: "first", CreatedAt: first.CreatedAt}})
			if !slices.Contains(lookedSecond, "first") {
				t.Fatalf("second look = %v; want the first", lookedSecond)
			}
			if created, err := s.CreateAfterLook(ctx, second, lookedSecond); err != nil || !created {
				t.Fatalf("CreateAfterLook(second) after a second look = %v, %v", created, err)
			}
		})
	}
}
