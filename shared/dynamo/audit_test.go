package dynamo_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/audit/audittest"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/pipeline"
)

func newAuditLog(t testing.TB) (*dynamo.AuditLog, *dynamodb.Client, string, *counter) {
	t.Helper()
	client, c := newClient(t)
	names := newTables(t, client)
	return dynamo.NewAuditLog(client, names.Audit, dynamo.AuditOptions{AppendSettle: testSettle}), client, names.Audit, c
}

// testSettle is AppendSettle in the tests: one clock, and DynamoDB Local's indexes are written
// with the table, so a record is readable by the time Append returns.
const testSettle = time.Nanosecond

// One log, one table, every subtest: queries and chains must not see each other's records.
func TestAuditLogConformance(t *testing.T) {
	l, client, table, _ := newAuditLog(t)
	audittest.RunWithTamper(t, func(t *testing.T) audit.Log { return l },
		func(*testing.T, audit.Log) audittest.Tamperer { return tamperer{client, table} })
}

// A fresh AuditLog per subtest on one table: what several processes see (no shared hints).
func TestAuditLogConformanceSeparateInstances(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).Audit
	audittest.RunWithTamper(t, func(t *testing.T) audit.Log {
		return dynamo.NewAuditLog(client, table, dynamo.AuditOptions{AppendSettle: testSettle})
	},
		func(*testing.T, audit.Log) audittest.Tamperer { return tamperer{client, table} })
}

// tamperer alters the audit table with raw DynamoDB calls, behind the log's back.
type tamperer struct {
	client *dynamodb.Client
	table  string
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}
}

func seqSK(seq int64) string { return fmt.Sprintf("SEQ#%020d", seq) }

func (tp tamperer) Put(t *testing.T, r audit.Record) {
	t.Helper()
	if _, err := tp.client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: &tp.table, Item: dynamo.RecordItem(r)}); err != nil {
		t.Fatalf("tamper: put %s seq %d: %v", r.Chain, r.Seq, err)
	}
}

func (tp tamperer) Delete(t *testing.T, chain string, seq int64) {
	t.Helper()
	tp.delete(t, key("CHAIN#"+chain, seqSK(seq)))
}

func (tp tamperer) delete(t *testing.T, k map[string]types.AttributeValue) {
	t.Helper()
	if _, err := tp.client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: &tp.table, Key: k}); err != nil {
		t.Fatalf("tamper: delete %v: %v", k, err)
	}
}

func (tp tamperer) SetHead(t *testing.T, h audit.Head) {
	t.Helper()
	k := key("CHAIN#"+h.Chain, "HEAD")
	if h.Seq == 0 {
		tp.delete(t, k)
		return
	}
	k["seq"] = &types.AttributeValueMemberN{Value: fmt.Sprint(h.Seq)}
	k["hash"] = &types.AttributeValueMemberS{Value: h.Hash}
	if _, err := tp.client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: &tp.table, Item: k}); err != nil {
		t.Fatalf("tamper: set head of %s: %v", h.Chain, err)
	}
}

// DropChain deletes the chain's records and head, their message id markers and the chain's
// directory entry.
func (tp tamperer) DropChain(t *testing.T, chain string) {
	t.Helper()
	pages := dynamodb.NewQueryPaginator(tp.client, &dynamodb.QueryInput{TableName: &tp.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "CHAIN#" + chain}}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(t.Context())
		if err != nil {
			t.Fatalf("tamper: read %s: %v", chain, err)
		}
		for _, it := range page.Items {
			tp.delete(t, map[string]types.AttributeValue{"pk": it["pk"], "sk": it["sk"]})
			if id, ok := it["message_id"].(*types.AttributeValueMemberS); ok {
				tp.delete(t, key("MSG#"+id.Value, "MSG"))
			}
		}
	}
	tp.delete(t, key("CHAINS", chain))
}

func rec(id, chain string, at time.Time) audit.Record {
	return audit.Record{MessageID: id, Type: "deployment.applied", Version: 1, Env: "dev", Chain: chain,
		Component: "dev/app/api", DeploymentID: "dep-1", CorrelationID: "corr-1", CausationID: "cause-1",
		ActorKind: "git", Actor: "Ada <ada@example.com>", OccurredAt: at,
		Body: json.RawMessage(fmt.Sprintf(`{"id":%q,"payload":{"n":1}}`, id))}
}

var base = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

// A burst of refused requests across many processes (a separate AuditLog each, default
// options): spread over their chains, every entry lands.
func TestAuditBurstOfSecurityEntriesAllLand(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).Audit
	const appenders = 48
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for i := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{})
			id := fmt.Sprintf("refused-%02d", i)
			r := rec(id, audit.SpreadChain("security", id), base.Add(time.Duration(i)*time.Millisecond))
			r.Type, r.Component, r.DeploymentID = "security.api_unauthenticated", "", ""
			if _, err := l.Append(t.Context(), r); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{})
	recs, err := l.Query(t.Context(), audit.Query{Actor: "Ada <ada@example.com>"})
	if err != nil || len(recs) != appenders {
		t.Errorf("%d entries in the log (%v), want %d", len(recs), err, appenders)
	}
	if rep, err := audit.VerifyLog(t.Context(), l, audit.VerifyOptions{}); err != nil || rep.Err() != nil {
		t.Errorf("verify: %v %v", err, rep.Err())
	}
}

// Appenders in separate processes (separate AuditLogs, no shared hints) writing one chain at
// once, with overlapping message ids: the chain must not fork, every id lands once.
func TestAuditConcurrentAppendersOneChain(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).Audit
	const appenders, each = 6, 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{MaxAttempts: 100})
			for i := 0; i < each; i += 5 {
				var batch []audit.Record
				for j := i; j < i+5; j++ {
					id := fmt.Sprintf("m-%d-%03d", a, j)
					if j%3 == 0 {
						id = fmt.Sprintf("shared-%03d", j) // every appender sends these
					}
					batch = append(batch, rec(id, "dev/app/api", base.Add(time.Duration(j)*time.Second)))
				}
				n, err := l.Append(t.Context(), batch...)
				if err != nil {
					t.Errorf("appender %d: %v", a, err)
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := appenders*each - (appenders-1)*(each/3)
	if total != want {
		t.Errorf("appended %d new records in all, want %d", total, want)
	}
	l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{})
	if err := l.Verify(t.Context(), "dev/app/api"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	got, err := l.Query(t.Context(), audit.Query{DeploymentID: "dep-1"})
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[int64]bool{}
	ids := map[string]bool{}
	for _, r := range got {
		if seqs[r.Seq] || ids[r.MessageID] {
			t.Errorf("seq %d / id %s twice", r.Seq, r.MessageID)
		}
		seqs[r.Seq], ids[r.MessageID] = true, true
	}
	if len(got) != want || len(seqs) != want {
		t.Errorf("%d records, %d distinct seqs; want %d", len(got), len(seqs), want)
	}
	for s := int64(1); s <= int64(want); s++ {
		if !seqs[s] {
			t.Errorf("seq %d missing", s)
		}
	}
}

// An audit worker's batch (ten messages on five chains) is one transaction.
func TestAuditSmallBatchesShareATransaction(t *testing.T) {
	l, _, _, c := newAuditLog(t)
	batch := func(from int) []audit.Record {
		var recs []audit.Record
		for i := from; i < from+10; i++ {
			recs = append(recs, rec(fmt.Sprintf("m%02d", i), fmt.Sprintf("dev/app/c%d", i%5), base.Add(time.Duration(i)*time.Second)))
		}
		return recs
	}
	c.reset()
	if n, err := l.Append(t.Context(), batch(0)...); err != nil || n != 10 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	// First time: the day entry, the five heads in one read, one transaction.
	if ops := c.reset(); ops["TransactWriteItems"] != 1 || ops["BatchGetItem"] != 1 || ops["PutItem"] != 1 || len(ops) != 3 {
		t.Errorf("first batch: requests %v; want 1 PutItem, 1 BatchGetItem, 1 TransactWriteItems", ops)
	}
	if n, err := l.Append(t.Context(), batch(10)...); err != nil || n != 10 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	if ops := c.reset(); ops["TransactWriteItems"] != 1 || len(ops) != 1 {
		t.Errorf("second batch: requests %v; want 1 TransactWriteItems", ops)
	}
	for i := range 5 {
		if err := l.Verify(t.Context(), fmt.Sprintf("dev/app/c%d", i)); err != nil {
			t.Error(err)
		}
	}
}

// Appenders of several processes whose batches span the same chains.
func TestAuditConcurrentAppendersManyChains(t *testing.T) {
	client, _ := newClient(t)
	table := newTables(t, client).Audit
	const appenders, batches, chains = 5, 8, 4
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{MaxAttempts: 100})
			for b := range batches {
				var recs []audit.Record
				for i := range 8 {
					recs = append(recs, rec(fmt.Sprintf("a%d-b%d-%d", a, b, i), fmt.Sprintf("c%d", (a+i)%chains), base.Add(time.Duration(i)*time.Second)))
				}
				if n, err := l.Append(t.Context(), recs...); err != nil || n != 8 {
					t.Errorf("appender %d: Append = %d, %v", a, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{})
	for c := range chains {
		if err := l.Verify(t.Context(), fmt.Sprintf("c%d", c)); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	all, err := l.Query(t.Context(), audit.Query{Component: "dev/app/api"})
	if err != nil {
		t.Fatal(err)
	}
	if want := appenders * batches * 8; len(all) != want {
		t.Errorf("%d records, want %d", len(all), want)
	}
}

// Many records over few chains in one Append: batched into transactions per chain.
func TestAuditAppendBatches(t *testing.T) {
	l, _, _, c := newAuditLog(t)
	var recs []audit.Record
	for i := range 1000 {
		recs = append(recs, rec(fmt.Sprintf("m%04d", i), fmt.Sprintf("chain-%d", i%3), base.Add(time.Duration(i)*time.Millisecond)))
	}
	c.reset()
	n, err := l.Append(t.Context(), recs...)
	if err != nil || n != 1000 {
		t.Fatalf("Append(1000) = %d, %v", n, err)
	}
	ops := c.reset()
	// 334 records on a chain take 7 transactions of at most 49 records: 3 x 7 = 21.
	if ops["TransactWriteItems"] != 21 || ops["Scan"] != 0 {
		t.Errorf("requests = %v; want 21 TransactWriteItems", ops)
	}
	t.Logf("1,000 records over 3 chains: %v", ops)
	for i := range 3 {
		if err := l.Verify(t.Context(), fmt.Sprintf("chain-%d", i)); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	n, err = l.Append(t.Context(), recs...)
	if err != nil || n != 0 {
		t.Fatalf("Append(the same 1000 again) = %d, %v; want 0", n, err)
	}
	t.Logf("the same 1,000 again: %v", c.reset())
}

// The ways a chain can be altered behind the log's back, each found by Verify at its seq.
func TestAuditTamperKinds(t *testing.T) {
	for name, tc := range map[string]struct {
		alter   func(t *testing.T, client *dynamodb.Client, table, chain string) error
		wantSeq string
	}{
		"deleted middle record": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(2))})
			return err
		}, "seq 2"},
		"deleted last record (truncation)": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(4))})
			return err
		}, "seq 4"},
		"edited actor": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(3)),
				UpdateExpression:          aws.String("SET actor = :a"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":a": &types.AttributeValueMemberS{Value: "mallory"}}})
			return err
		}, "seq 3"},
		"edited time": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(1)),
				UpdateExpression: aws.String("SET occurred_at = :a"),
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":a": &types.AttributeValueMemberS{Value: "2026-11-22T09:30:00.000000001Z"}}})
			return err
		}, "seq 1"},
		"removed attribute": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(2)),
				UpdateExpression: aws.String("REMOVE deployment_id")})
			return err
		}, "seq 2"},
		"rehashed record": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(2)),
				UpdateExpression:         aws.String("SET body = :b, #h = :h"),
				ExpressionAttributeNames: map[string]string{"#h": "hash"},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":b": &types.AttributeValueMemberS{Value: "{}"}, ":h": &types.AttributeValueMemberS{Value: "x"}}})
			return err
		}, "seq 2"},
		"moved out of the by-day index": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(3)),
				UpdateExpression:          aws.String("SET day_shard = :d"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":d": &types.AttributeValueMemberS{Value: "1970-01-01#0"}}})
			return err
		}, "seq 3"},
		"moved out of the by-appended index": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(3)),
				UpdateExpression:          aws.String("SET append_shard = :s"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: "9"}}})
			return err
		}, "seq 3"},
		"append stamp removed": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: &table, Key: key("CHAIN#"+chain, seqSK(3)),
				UpdateExpression: aws.String("REMOVE appended, append_shard")})
			return err
		}, "seq 3"},
		"deleted day of the day directory": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: &table, Key: key("DAYS", base.Format(time.DateOnly))})
			return err
		}, "seq 1"},
		"deleted head": {func(t *testing.T, client *dynamodb.Client, table, chain string) error {
			_, err := client.DeleteItem(t.Context(), &dynamodb.DeleteItemInput{TableName: &table, Key: key("CHAIN#"+chain, "HEAD")})
			return err
		}, "seq 4"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, client, table, _ := newAuditLog(t)
			chain := "dev/app/api"
			var recs []audit.Record
			for i := range 4 {
				recs = append(recs, rec(fmt.Sprintf("m%d", i), chain, base.Add(time.Duration(i)*time.Second)))
			}
			if _, err := l.Append(t.Context(), recs...); err != nil {
				t.Fatal(err)
			}
			if err := l.Verify(t.Context(), chain); err != nil {
				t.Fatalf("Verify before: %v", err)
			}
			if err := tc.alter(t, client, table, chain); err != nil {
				t.Fatal(err)
			}
			err := l.Verify(t.Context(), chain)
			if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), tc.wantSeq+":") {
				t.Fatalf("Verify = %v; want audit.ErrTampered at %s", err, tc.wantSeq)
			}
			t.Log(err)
		})
	}
}

// An item written outside the chains' partitions, as a record of a chain would be (indexes find
// it; Verify, walking the chains, never would), fails the questions that find it instead of
// being answered as a record.
func TestAuditForgedItemOutsideTheChainsIsRefusedByReaders(t *testing.T) {
	t.Parallel()
	l, client, table, _ := newAuditLog(t)
	chain := "dev/app/api"
	if _, err := l.Append(t.Context(), rec("m0", chain, base), rec("m1", chain, base.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	forged := rec("m-forged", chain, base.Add(2*time.Second))
	forged.Seq, forged.Type = 3, "deployment.approved"
	it := dynamo.RecordItem(forged)
	it["pk"], it["sk"] = &types.AttributeValueMemberS{Value: "X"}, &types.AttributeValueMemberS{Value: "X"}
	if _, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: &table, Item: it}); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]audit.Query{
		"component": {Component: "dev/app/api"}, "correlation": {Correlation: "corr-1"}, "time": {Since: base.Add(-time.Hour)},
	} {
		recs, err := l.Query(t.Context(), q)
		if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), "X X") {
			t.Errorf("%s: %d records, %v; want audit.ErrTampered naming the item", name, len(recs), err)
		}
	}
	if err := l.Verify(t.Context(), chain); err != nil {
		t.Errorf("Verify of the chain itself: %v", err)
	}
}

// Each auditor question is one Query per page, on its own index; no Scan, no follow-up reads.
func TestAuditQuestionsAreOneQuery(t *testing.T) {
	l, _, _, c := newAuditLog(t)
	var recs []audit.Record
	for i := range 60 {
		r := rec(fmt.Sprintf("m%02d", i), fmt.Sprintf("dev/app/c%d", i%6), base.Add(time.Duration(i)*time.Minute))
		r.Component = r.Chain
		r.DeploymentID = fmt.Sprintf("dep-%d", i%6)
		r.CorrelationID = fmt.Sprintf("corr-%d", i%2)
		r.Actor = fmt.Sprintf("actor-%d", i%3)
		recs = append(recs, r)
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		q       audit.Query
		want    int
		queries int
	}{
		{"(a) one deployment", audit.Query{DeploymentID: "dep-2"}, 10, 1},
		{"(b) one component's history", audit.Query{Component: "dev/app/c3", Since: base, Until: base.Add(time.Hour)}, 10, 1},
		{"(c) one root cause", audit.Query{Correlation: "corr-1"}, 30, 1},
		{"(d) one actor", audit.Query{Actor: "actor-0"}, 20, 1},
		{"(d) one actor, in a range", audit.Query{Actor: "actor-0", Since: base.Add(10 * time.Minute), Until: base.Add(20 * time.Minute)}, 3, 1},
		{"(e) a time range within a day", audit.Query{Since: base.Add(5 * time.Minute), Until: base.Add(15 * time.Minute)}, 10, dynamo.DayShards},
		{"two fields: index and filter", audit.Query{Correlation: "corr-0", Actor: "actor-0"}, 10, 1},
		{"limit", audit.Query{Correlation: "corr-0", Limit: 5}, 5, 1},
	} {
		c.reset()
		got, err := l.Query(t.Context(), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		desc := c.durations()
		ops := c.reset()
		if len(got) != tc.want || ops["Query"] != tc.queries || len(ops) != 1 {
			t.Errorf("%s: %d records with requests %s; want %d records with %d Query", tc.name, len(got), desc, tc.want, tc.queries)
		}
		if !slices.IsSortedFunc(got, func(a, b audit.Record) int { return a.OccurredAt.Compare(b.OccurredAt) }) {
			t.Errorf("%s: not in time order", tc.name)
		}
	}
}

// Time-only queries across days, open-ended ones included (they consult the day directory).
func TestAuditTimeRangeAcrossDays(t *testing.T) {
	l, _, _, c := newAuditLog(t)
	var recs []audit.Record
	for d := range 5 {
		for h := range 3 {
			at := base.AddDate(0, 0, d*10).Add(time.Duration(h) * 5 * time.Hour) // days 0, 10, 20, 30, 40
			recs = append(recs, rec(fmt.Sprintf("d%d-h%d", d, h), fmt.Sprintf("c%d", h), at))
		}
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return base.AddDate(0, 0, d) }
	for _, tc := range []struct {
		name  string
		q     audit.Query
		first string
		n     int
	}{
		{"everything", audit.Query{}, "d0-h0", 15},
		{"since day 10", audit.Query{Since: day(10)}, "d1-h0", 12},
		{"until day 20", audit.Query{Until: day(20)}, "d0-h0", 6},
		{"[day 10, day 30) (closed, 20 days)", audit.Query{Since: day(10), Until: day(30)}, "d1-h0", 6},
		{"[day 10, day 11) (closed, within two days)", audit.Query{Since: day(10), Until: day(11)}, "d1-h0", 3},
		{"[day 0, day 45) (closed, over 31 days)", audit.Query{Since: day(0), Until: day(45)}, "d0-h0", 15},
		{"limit across days", audit.Query{Since: day(5), Limit: 4}, "d1-h0", 4},
		{"empty", audit.Query{Since: day(41), Until: day(42)}, "", 0},
	} {
		c.reset()
		got, err := l.Query(t.Context(), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != tc.n || (tc.n > 0 && got[0].MessageID != tc.first) {
			var ids []string
			for _, r := range got {
				ids = append(ids, r.MessageID)
			}
			t.Errorf("%s: %v; want %d records from %s", tc.name, ids, tc.n, tc.first)
		}
		t.Logf("%s: %d records, requests %v", tc.name, len(got), c.reset())
	}
}

func TestAuditAppendValidates(t *testing.T) {
	l, _, _, c := newAuditLog(t)
	big := rec("big", "c", base)
	big.Body = json.RawMessage(`{"x":"` + strings.Repeat("a", 410*1024) + `"}`)
	c.reset()
	_, err := l.Append(t.Context(), rec("ok", "c", base), big)
	var tooLarge *dynamo.TooLargeError
	if !errors.As(err, &tooLarge) || pipeline.Classify(err) != pipeline.DeadLetter {
		t.Fatalf("Append(410 KB body) = %v; want a permanent *dynamo.TooLargeError", err)
	}
	t.Log(err)
	for name, r := range map[string]audit.Record{
		"no id":    {Chain: "c", OccurredAt: base},
		"no chain": {MessageID: "x", OccurredAt: base},
		"no time":  {MessageID: "x", Chain: "c"},
		"bad json": {MessageID: "x", Chain: "c", OccurredAt: base, Body: json.RawMessage(`{`)},
	} {
		if _, err := l.Append(t.Context(), r); pipeline.Classify(err) != pipeline.DeadLetter {
			t.Errorf("%s: Append = %v; want a permanent error", name, err)
		}
	}
	if ops := c.reset(); len(ops) != 0 {
		t.Errorf("invalid appends sent requests: %v", ops)
	}
	// Not UTF-8 but valid JSON bytes-wise: stored as binary, read back and hashed the same.
	odd := rec("odd", "c", base)
	odd.Body = json.RawMessage("\"\xff\xfe\"")
	if n, err := l.Append(t.Context(), odd); err != nil || n != 1 {
		t.Fatalf("Append(non-UTF-8 body) = %d, %v", n, err)
	}
	if err := l.Verify(t.Context(), "c"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// The chain directory is what Verify of the whole log walks: a chain taken out of it escapes
// `karma audit verify` without a checkpoint, and is named against one, whole (seq 0).
func TestAuditChainRemovedFromDirectory(t *testing.T) {
	l, client, table, _ := newAuditLog(t)
	ctx := t.Context()
	if _, err := l.Append(ctx, rec("m1", "dev/app/api", base), rec("m2", "dev/app/api", base), rec("m3", "dev/app/db", base)); err != nil {
		t.Fatal(err)
	}
	cp, err := audit.TakeCheckpoint(ctx, l, base)
	if err != nil {
		t.Fatal(err)
	}
	tamperer{client, table}.delete(t, key("CHAINS", "dev/app/api"))
	if rep, err := audit.VerifyLog(ctx, l, audit.VerifyOptions{}); err != nil || rep.Err() != nil || rep.Chains != 1 {
		t.Fatalf("VerifyLog without a checkpoint = %d chains, %v, %v; want 1 chain, no break", rep.Chains, rep.Err(), err)
	}
	rep, err := audit.VerifyLog(ctx, l, audit.VerifyOptions{Against: &cp})
	if err != nil || len(rep.Broken) != 1 || rep.Broken[0].Chain != "dev/app/api" || rep.Broken[0].Seq != 0 ||
		!strings.Contains(rep.Broken[0].What, "missing from the log's list of chains") {
		t.Fatalf("VerifyLog against a checkpoint = %+v, %v", rep.Broken, err)
	}
	t.Log(rep.Err())
}

// A checkpoint reads the chain directory (one Query per 1 MB page) and the heads (one
// BatchGetItem per 100 chains); nothing else, whatever the number of records.
func TestAuditHeadsRequests(t *testing.T) {
	l, _, _, c := newAuditLog(t)
	var recs []audit.Record
	for i := range 250 {
		recs = append(recs, rec(fmt.Sprintf("m%03d", i), fmt.Sprintf("dev/app/c%03d", i%125), base.Add(time.Duration(i)*time.Second)))
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	c.reset()
	cp, err := audit.TakeCheckpoint(t.Context(), l, base)
	if err != nil {
		t.Fatal(err)
	}
	if ops := c.reset(); cp.Chains != 125 || cp.Records != 250 || ops["Query"] != 1 || ops["BatchGetItem"] != 2 || len(ops) != 2 {
		t.Errorf("checkpoint of %d chains, %d records took %v; want 125, 250 with 1 Query and 2 BatchGetItem", cp.Chains, cp.Records, ops)
	}
}
