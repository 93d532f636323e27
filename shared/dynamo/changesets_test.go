package dynamo_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/awscount"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/changeset/changesettest"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/pipeline/seentest"
	"github.com/usekarma/karma/shared/promotion"
)

func TestChangeSetsConformance(t *testing.T) {
	client, _ := newClient(t)
	s := dynamo.NewChangeSets(client, newTables(t, client).ChangeSets, dynamo.ChangeSetOptions{Settle: -1})
	changesettest.Run(t, func(t *testing.T) changeset.Store { return s })
}

func TestSeenConformance(t *testing.T) {
	client, _ := newClient(t)
	s := dynamo.NewSeen(client, newTables(t, client).Seen, dynamo.SeenOptions{})
	seentest.Run(t, func(t *testing.T) pipeline.Seen { return s })
}

// Two workers (two processes, two Lambdas) on one table: each has its own Seen.
func TestSeenHoldersConformance(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).Seen
	seentest.RunHolders(t, func(t *testing.T) (pipeline.Seen, pipeline.Seen) {
		return dynamo.NewSeen(client, table, dynamo.SeenOptions{}), dynamo.NewSeen(client, table, dynamo.SeenOptions{})
	})
}

// The sizes behind the documented limit: what a 1,000-component change set takes.
func TestChangeSetSizes(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).ChangeSets
	s := dynamo.NewChangeSets(client, table, dynamo.ChangeSetOptions{Settle: -1})
	for _, n := range []int{100, 1000, 3000} {
		cs := changesettest.Sample(fmt.Sprintf("size-%d", n), n)
		raw, _ := json.Marshal(cs)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		created, err := s.Create(t.Context(), cs)
		t.Logf("%d components: %d bytes of JSON, %d gzipped: Create = %v, %v", n, len(raw), gz.Len(), created, err)
		if n <= 1000 && (err != nil || !created) {
			t.Errorf("a change set of %d components must fit: %v", n, err)
		}
	}
}

func TestChangeSetTooLarge(t *testing.T) {
	client, c := newClient(t)
	s := dynamo.NewChangeSets(client, newTables(t, client).ChangeSets, dynamo.ChangeSetOptions{Settle: -1})
	cs := changesettest.Sample("huge", 60)
	// Incompressible configs: 16 KB of random hex per component (gzip halves hex, no more).
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range cs.Nodes {
		blob := make([]byte, 8192)
		for i := range blob {
			blob[i] = byte(rnd.Uint32())
		}
		n.Config = json.RawMessage(`{"blob":"` + hex.EncodeToString(blob) + `"}`)
	}
	c.reset()
	_, err := s.Create(t.Context(), cs)
	var tooLarge *dynamo.TooLargeError
	if !errors.As(err, &tooLarge) || pipeline.Classify(err) != pipeline.DeadLetter {
		t.Fatalf("Create(oversized) = %v; want a permanent *dynamo.TooLargeError", err)
	}
	if ops := c.reset(); len(ops) != 0 {
		t.Errorf("an oversized Create sent requests: %v", ops)
	}
	t.Log(err)
	// Growing past the limit in Update fails the same way and leaves the stored one.
	small := changesettest.Sample("grows", 2)
	if _, err := s.Create(t.Context(), small); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(t.Context(), "grows", func(x *changeset.ChangeSet) error { x.Nodes = cs.Nodes; return nil })
	if !errors.As(err, &tooLarge) {
		t.Fatalf("Update(oversized) = %v; want *dynamo.TooLargeError", err)
	}
	if got, err := s.Get(t.Context(), "grows"); err != nil || len(got.Nodes) != 2 {
		t.Fatalf("after a refused Update: %v nodes, %v", len(got.Nodes), err)
	}
}

// Update gives up after MaxAttempts lost races with a transient *ConflictError.
func TestChangeSetUpdateConflict(t *testing.T) {
	client, _ := newClient(t)
	s := dynamo.NewChangeSets(client, newTables(t, client).ChangeSets, dynamo.ChangeSetOptions{MaxAttempts: 3})
	if _, err := s.Create(t.Context(), changesettest.Sample("c", 2)); err != nil {
		t.Fatal(err)
	}
	runs := 0
	_, err := s.Update(t.Context(), "c", func(cs *changeset.ChangeSet) error {
		runs++
		// Another writer wins every race.
		_, err := s.Update(t.Context(), "c", func(cs *changeset.ChangeSet) error { cs.Rejected += "x"; return nil })
		return err
	})
	var conflict *dynamo.ConflictError
	if !errors.As(err, &conflict) || !pipeline.IsTransient(err) || runs != 3 {
		t.Fatalf("Update always losing = %v after %d runs of fn; want a transient *dynamo.ConflictError after 3", err, runs)
	}
	got, _ := s.Get(t.Context(), "c")
	if got.Rejected != "xxx" {
		t.Errorf("Rejected = %q, want the other writer's three updates", got.Rejected)
	}
}

// An operator may store a document as plain JSON (a string); it is read.
func TestChangeSetPlainJSONDocument(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).ChangeSets
	s := dynamo.NewChangeSets(client, table, dynamo.ChangeSetOptions{Settle: -1})
	cs := changesettest.Sample("plain", 3)
	if _, err := s.Create(t.Context(), cs); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(cs)
	_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: aws.String(table),
		Key:                       map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "plain"}},
		UpdateExpression:          aws.String("SET doc = :d"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": &types.AttributeValueMemberS{Value: string(raw)}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(t.Context(), "plain", func(cs *changeset.ChangeSet) error { cs.Approved = true; return nil })
	if err != nil || !got.Approved || len(got.Nodes) != 3 {
		t.Fatalf("Update of a plain JSON document = %+v, %v", got, err)
	}
}

func TestRecordsConformance(t *testing.T) {
	client, _ := newClient(t)
	s := dynamo.NewSeen(client, newTables(t, client).Seen, dynamo.SeenOptions{})
	seentest.RunRecords(t, func(t *testing.T) pipeline.Records { return s })
}

// A table written before the pointers of the deployments applied last: LastApplied answers from
// List and backfills them.
func TestChangeSetsLastAppliedUpgrade(t *testing.T) {
	client, _ := newClient(t)
	changesettest.RunUpgrade(t, func(t *testing.T) (changeset.Store, func(t *testing.T) changeset.Store) {
		table := newTables(t, client).ChangeSets
		return dynamo.NewChangeSets(client, table, dynamo.ChangeSetOptions{Settle: -1}), func(t *testing.T) changeset.Store {
			if n := forgetApplied(t, client, table); n == 0 {
				t.Fatal("no pointer of a deployment applied last in the table")
			}
			return dynamo.NewChangeSets(client, table, dynamo.ChangeSetOptions{Settle: -1})
		}
	})
}

// A table written before the items of the unfinished change sets and of those with promotion
// work: Unfinished and Promoting answer from List and backfill them.
func TestChangeSetsListingsUpgrade(t *testing.T) {
	client, _ := newClient(t)
	changesettest.RunListingsUpgrade(t, func(t *testing.T) (changeset.Store, func(t *testing.T) changeset.Store) {
		table := newTables(t, client).ChangeSets
		return dynamo.NewChangeSets(client, table, dynamo.ChangeSetOptions{Settle: -1}), func(t *testing.T) changeset.Store {
			if n := forget(t, client, table, "#unfinished#"); n == 0 {
				t.Fatal("no item of an unfinished change set in the table")
			}
			if n := forget(t, client, table, "#promoting#"); n == 0 {
				t.Fatal("no item of a change set with promotion work in the table")
			}
			return dynamo.NewChangeSets(client, table, dynamo.ChangeSetOptions{Settle: -1})
		}
	})
}

// forget deletes the table's items whose id starts with prefix, as a table written before them;
// it returns how many it deleted.
func forget(t *testing.T, client *dynamodb.Client, table, prefix string) int {
	t.Helper()
	in := &dynamodb.ScanInput{TableName: aws.String(table), ProjectionExpression: aws.String("id")}
	n := 0
	for {
		out, err := client.Scan(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			if id, ok := it["id"].(*types.AttributeValueMemberS); !ok || !strings.HasPrefix(id.Value, prefix) {
				continue
			}
			if _, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: aws.String(table),
				Key: map[string]types.AttributeValue{"id": it["id"]}}); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if len(out.LastEvaluatedKey) == 0 {
			return n
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// forgetApplied deletes the table's items that are not change sets (the pointers of the
// deployments applied last and their marker), as a table written before them; it returns how
// many it deleted.
func forgetApplied(t *testing.T, client *dynamodb.Client, table string) int {
	t.Helper()
	out, err := client.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(table), ProjectionExpression: aws.String("id, kind")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range out.Items {
		if _, ok := it["kind"]; ok {
			continue
		}
		if _, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: aws.String(table),
			Key: map[string]types.AttributeValue{"id": it["id"]}}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// LastApplied reads the pointer and the change set it names: not every change set of the table
// (it had no way but List, a Query of every change set and a BatchGetItem of each, on each call).
func TestChangeSetsLastAppliedReadsOneChangeSet(t *testing.T) {
	client, c := newClient(t)
	s := dynamo.NewChangeSets(client, newTables(t, client).ChangeSets, dynamo.ChangeSetOptions{Settle: -1})
	const comp, never = "dev/service/component-0000", "dev/service/component-0001"
	for i := range 30 {
		cs := changesettest.Sample(fmt.Sprintf("reads-%02d", i), 2)
		cs.CreatedAt = cs.CreatedAt.Add(time.Duration(i) * time.Minute)
		if created, err := s.Create(t.Context(), cs); err != nil || !created {
			t.Fatalf("Create: %v, %v", created, err)
		}
		if i == 3 {
			if _, err := s.Update(t.Context(), cs.ID, func(cs *changeset.ChangeSet) error {
				cs.Nodes[comp].Outcome = &changeset.Outcome{RuntimeVersion: 3}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The first call on a table without the marker lists the change sets once and backfills.
	if _, err := changeset.LastApplied(t.Context(), s, "dev", []string{comp}); err != nil {
		t.Fatal(err)
	}
	c.reset()
	got, err := changeset.LastApplied(t.Context(), s, "dev", []string{comp})
	if n := got[comp]; err != nil || n == nil || n.Outcome.RuntimeVersion != 3 {
		t.Fatalf("LastApplied(%s) = %+v, %v; want the node of reads-03", comp, n, err)
	}
	if ops := c.reset(); ops["Query"] != 0 || ops["BatchGetItem"] != 1 || ops["GetItem"] != 1 || len(ops) != 2 {
		t.Errorf("LastApplied of a component applied: %v; want one BatchGetItem (marker and pointer) and one GetItem (its change set)", ops)
	}
	if got, err := changeset.LastApplied(t.Context(), s, "dev", []string{never}); err != nil || got[never] != nil {
		t.Fatalf("LastApplied(%s) = %+v, %v; want none", never, got[never], err)
	}
	if ops := c.reset(); ops["BatchGetItem"] != 1 || len(ops) != 1 {
		t.Errorf("LastApplied of a component never applied: %v; want one BatchGetItem", ops)
	}
}

// A change set recording more outcomes at once than a transaction holds (a pointer each): the
// pointers are marked incomplete with it, and LastApplied answers from List until it has
// backfilled them.
func TestChangeSetsLastAppliedManyOutcomesAtOnce(t *testing.T) {
	client, _ := newClient(t)
	s := dynamo.NewChangeSets(client, newTables(t, client).ChangeSets, dynamo.ChangeSetOptions{Settle: -1})
	older := changesettest.Sample("many-older", 150)
	for _, n := range older.Nodes {
		n.Outcome = &changeset.Outcome{RuntimeVersion: 1}
	}
	if created, err := s.Create(t.Context(), older); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	// Every pointer complete: the marker is there after the first LastApplied.
	comps := slices.Sorted(maps.Keys(older.Nodes))
	if _, err := changeset.LastApplied(t.Context(), s, "dev", comps[:1]); err != nil {
		t.Fatal(err)
	}
	newer := changesettest.Sample("many-newer", 150)
	newer.CreatedAt = newer.CreatedAt.Add(time.Hour)
	if created, err := s.Create(t.Context(), newer); err != nil || !created {
		t.Fatalf("Create: %v, %v", created, err)
	}
	if _, err := s.Update(t.Context(), newer.ID, func(cs *changeset.ChangeSet) error {
		for _, n := range cs.Nodes {
			n.Outcome = &changeset.Outcome{RuntimeVersion: 2}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // from List (backfilling), then from the pointers
		got, err := changeset.LastApplied(t.Context(), s, "dev", comps)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range comps {
			if n := got[c]; n == nil || n.Outcome.RuntimeVersion != 2 {
				t.Fatalf("LastApplied(%s) = %+v; want the node of many-newer", c, n)
			}
		}
	}
}

// onlyStore is a change set store seen through changeset.Store alone: changeset.Unfinished
// answers from List, as it did on DynamoDB before the items of the unfinished change sets.
type onlyStore struct{ changeset.Store }

// What the ordering's question, the check for due promotions, the expiry's sweep and the commits
// resolve compares a push with cost on a table of 1,000
// finished change sets and 3 unfinished ones, the figures of docs/performance.md ("AWS: requests
// and cost"): requests and read units of changeset.Unfinished and promotion.Start from List (as
// before) and from the items kept for them; and the write units of a change set's create and of
// the update finishing it.
func TestChangeSetsUnfinishedRequests(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).ChangeSets
	ac := awscount.New(awscount.Options{Capacity: true})
	opts := client.Options()
	opts.APIOptions = append(slices.Clone(opts.APIOptions), ac.Middleware)
	counted := dynamodb.New(opts)
	s := dynamo.NewChangeSets(counted, table, dynamo.ChangeSetOptions{Settle: -1})
	ctx := t.Context()
	if _, err := changeset.Unfinished(ctx, s, "dev", nil); err != nil { // the markers
		t.Fatal(err)
	}
	if _, err := s.Promoting(ctx); err != nil {
		t.Fatal(err)
	}
	const history, open = 1000, 3
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				cs := changesettest.Sample(fmt.Sprintf("history-%04d", i), 5)
				cs.CreatedAt = cs.CreatedAt.Add(time.Duration(i) * time.Minute)
				if i < history {
					for _, n := range cs.Nodes {
						n.State = changeset.Applied
					}
				}
				if created, err := s.Create(ctx, cs); err != nil || !created {
					t.Errorf("Create: %v, %v", created, err)
				}
			}
		}()
	}
	for i := range history + open {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	comps := slices.Sorted(maps.Keys(changesettest.Sample("x", 5).Nodes))
	measure := func(what string, fn func() error) awscount.Counts {
		t.Helper()
		before := ac.Snapshot()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := ac.Snapshot().Sub(before)
		t.Logf("%s: %v", what, got)
		return got
	}
	var fromList, fromItems []changeset.Queued
	listed := measure("Unfinished from List", func() (err error) {
		fromList, err = changeset.Unfinished(ctx, onlyStore{s}, "dev", comps)
		return err
	})
	items := measure("Unfinished from the items", func() (err error) {
		fromItems, err = changeset.Unfinished(ctx, s, "dev", comps)
		return err
	})
	if len(fromItems) != open || len(fromList) != open {
		t.Fatalf("Unfinished: %d from the items, %d from List; want %d", len(fromItems), len(fromList), open)
	}
	q := func(op string) awscount.Key { return awscount.Key{Service: awscount.DynamoDB, Operation: op} }
	if items[q("Query")] != 1 || items[q("BatchGetItem")] != 1 {
		t.Errorf("Unfinished from the items: %v; want one Query and one BatchGetItem", items)
	}
	if items[q(awscount.ReadUnits)] >= listed[q(awscount.ReadUnits)]/10 {
		t.Errorf("Unfinished from the items read %v units, from List %v", items[q(awscount.ReadUnits)], listed[q(awscount.ReadUnits)])
	}
	nothing := func(context.Context, ...message.Envelope) error { return nil }
	when := time.Now()
	listedStart := measure("promotion.Start from List", func() error {
		_, err := promotion.Start(ctx, onlyStore{s}, nothing, when)
		return err
	})
	itemsStart := measure("promotion.Start from the items of the change sets with promotion work", func() error {
		_, err := promotion.Start(ctx, s, nothing, when)
		return err
	})
	if itemsStart[q("Query")] != 1 || itemsStart[q("BatchGetItem")] != 1 || itemsStart[q(awscount.ReadUnits)] >= listedStart[q(awscount.ReadUnits)]/10 {
		t.Errorf("promotion.Start from the items: %v; want one Query and one BatchGetItem, a fraction of List's read units", itemsStart)
	}
	sweep := func(st changeset.Store) func() error {
		return func() error { _, err := changeset.Sweep(ctx, st, time.Now); return err }
	}
	listedSweep := measure("Sweep from List", sweep(onlyStore{s}))
	itemsSweep := measure("Sweep from the items of the unfinished change sets", sweep(s))
	if itemsSweep[q("Query")] != 1 || itemsSweep[q("BatchGetItem")] != 1 || itemsSweep[q(awscount.ReadUnits)] >= listedSweep[q(awscount.ReadUnits)]/10 {
		t.Errorf("Sweep from the items: %v; want one Query and one BatchGetItem, a fraction of List's read units", itemsSweep)
	}
	latest := func(st changeset.Store) func() error {
		return func() error {
			n := 0
			return changeset.EachCommit(ctx, st, "dev", func(string) (bool, error) { n++; return n < 50, nil })
		}
	}
	listedCommits := measure("EachCommit, the latest 50, from List", latest(onlyStore{s}))
	newestCommits := measure("EachCommit, the latest 50, from the newest change sets", latest(s))
	if newestCommits[q("Query")] != 1 || newestCommits[q("BatchGetItem")] != 1 || newestCommits[q(awscount.ReadUnits)] >= listedCommits[q(awscount.ReadUnits)]/5 {
		t.Errorf("EachCommit from the newest change sets: %v; want one Query and one BatchGetItem, a fraction of List's read units", newestCommits)
	}
	created := measure("Create of an unfinished change set (its item and its environment's registry in the transaction)", func() error {
		_, err := s.Create(ctx, changesettest.Sample("new-open", 5))
		return err
	})
	if created[q("GetItem")] != 1 || created[q("TransactWriteItems")] != 1 {
		t.Errorf("Create of an unfinished change set: %v; want a GetItem (the registry) and a TransactWriteItems", created)
	}
	done := changesettest.Sample("new-done", 5)
	for _, n := range done.Nodes {
		n.State = changeset.Applied
	}
	measure("Create of a change set done at once (no item)", func() error {
		_, err := s.Create(ctx, done)
		return err
	})
	finished := measure("Update finishing it (its item put done, and the registry, in the transaction)", func() error {
		_, err := s.Update(ctx, "new-open", func(cs *changeset.ChangeSet) error {
			for _, n := range cs.Nodes {
				n.State = changeset.Applied
			}
			return nil
		})
		return err
	})
	if finished[q("GetItem")] != 2 || finished[q("TransactWriteItems")] != 1 {
		t.Errorf("Update finishing a change set: %v; want two GetItems (the change set, the registry) and a TransactWriteItems", finished)
	}
	measure("Update not changing its item (one PutItem)", func() error {
		_, err := s.Update(ctx, "new-open", func(cs *changeset.ChangeSet) error { cs.Approved = true; return nil })
		return err
	})
}
