package dynamo

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
)

// appendedAPI keeps the records appended and answers the by-appended index's Queries from them
// by their key condition (shard, appended between :lo and :hi, in appended order); filters are
// not evaluated, only checked to be well formed. Other Queries find nothing.
type appendedAPI struct {
	readsAPI
	mu      sync.Mutex // the log calls it from several goroutines
	items   []map[string]types.AttributeValue
	queries []*dynamodb.QueryInput
}

func (a *appendedAPI) BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return &dynamodb.BatchGetItemOutput{}, nil // no heads: new chains
}

func (a *appendedAPI) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

func (a *appendedAPI) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, it := range in.TransactItems {
		if it.Put != nil && it.Put.Item[attrMessageID] != nil {
			a.items = append(a.items, it.Put.Item)
		}
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

func (a *appendedAPI) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queries = append(a.queries, in)
	if aws.ToString(in.IndexName) != IndexAppended {
		return &dynamodb.QueryOutput{}, nil
	}
	num := func(v types.AttributeValue) int64 {
		n, _ := strconv.ParseInt(v.(*types.AttributeValueMemberN).Value, 10, 64)
		return n
	}
	lo, hi := num(in.ExpressionAttributeValues[":lo"]), num(in.ExpressionAttributeValues[":hi"])
	shard := in.ExpressionAttributeValues[":s"].(*types.AttributeValueMemberS).Value
	var out []map[string]types.AttributeValue
	for _, it := range a.items {
		if s, _ := getStr(it, attrAppendShard); s == shard {
			if n, _ := getNum(it, attrAppended); n >= lo && n <= hi {
				out = append(out, it)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y map[string]types.AttributeValue) int {
		a, _ := getNum(x, attrAppended)
		b, _ := getNum(y, attrAppended)
		return int(a - b)
	})
	return &dynamodb.QueryOutput{Items: out}, nil
}

// wellFormed reports an expression name or value a Query gives but no expression uses, or uses
// but does not give: DynamoDB refuses either.
func wellFormed(t *testing.T, in *dynamodb.QueryInput) {
	t.Helper()
	expr := aws.ToString(in.KeyConditionExpression) + " " + aws.ToString(in.FilterExpression)
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`[#:][a-z0-9]+`).FindAllString(expr, -1) {
		used[m] = true
	}
	for n := range in.ExpressionAttributeNames {
		if !used[n] {
			t.Errorf("Query of %s: name %s given, not used in %q", aws.ToString(in.IndexName), n, expr)
		}
		delete(used, n)
	}
	for v := range in.ExpressionAttributeValues {
		if !used[v] {
			t.Errorf("Query of %s: value %s given, not used in %q", aws.ToString(in.IndexName), v, expr)
		}
		delete(used, v)
	}
	for u := range used {
		t.Errorf("Query of %s: %s used in %q, not given", aws.ToString(in.IndexName), u, expr)
	}
}

// Append stamps each record with the clock of its transaction (appended) and a by-appended shard;
// Horizon is the clock less AppendSettle; QueryAppended asks every shard of by-appended for the
// window and returns the records after the position, in (appended, chain, seq) order; and a
// Query up to a horizon filters on appended, keeping the records from before it was kept.
func TestAuditAppendOrder(t *testing.T) {
	api := &appendedAPI{}
	clock := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	l := NewAuditLog(api, "t-audit", AuditOptions{AppendSettle: 5 * time.Second, Now: func() time.Time { return clock }})
	at := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	rec := func(id, chain string, occurred time.Duration) audit.Record {
		return audit.Record{MessageID: id, Type: "t", Version: 1, Env: "dev", Chain: chain, CorrelationID: "corr", ActorKind: "git", Actor: "ada",
			OccurredAt: at.Add(occurred), Body: []byte(`{}`)}
	}
	if _, err := l.Append(t.Context(), rec("a1", "a", time.Hour), rec("b1", "b", 0), rec("a2", "a", 2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	if _, err := l.Append(t.Context(), rec("c1", "c", -time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, it := range api.items {
		r, err := recordFromItem(it)
		shard, _ := getStr(it, attrAppendShard)
		if err != nil || r.Appended == 0 || shard != appendShard(r.MessageID) {
			t.Errorf("item of %s: appended %d, shard %q, %v", r.MessageID, r.Appended, shard, err)
		}
	}
	if h, _ := l.Horizon(t.Context()); h != clock.Add(-5*time.Second).UnixNano() {
		t.Errorf("Horizon = %d, want the clock less AppendSettle", h)
	}
	first := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC).UnixNano()
	ids := func(recs []audit.Record) (out []string) {
		for _, r := range recs {
			out = append(out, r.MessageID)
		}
		return out
	}
	for _, tc := range []struct {
		after audit.AppendPos
		upTo  int64
		limit int
		want  []string
	}{
		{audit.AppendPos{}, clock.UnixNano(), 0, []string{"a1", "a2", "b1", "c1"}},
		{audit.AppendPos{Appended: first, Chain: "a", Seq: 1}, clock.UnixNano(), 0, []string{"a2", "b1", "c1"}},
		{audit.AppendPos{Appended: first, Through: true}, clock.UnixNano(), 0, []string{"c1"}},
		{audit.AppendPos{}, first, 0, []string{"a1", "a2", "b1"}},
		{audit.AppendPos{}, clock.UnixNano(), 2, []string{"a1", "a2"}},
	} {
		api.queries = nil
		recs, err := l.QueryAppended(t.Context(), audit.Query{Correlation: "corr", Since: at.Add(-2 * time.Hour), Limit: tc.limit}, tc.after, tc.upTo)
		if err != nil || !slices.Equal(ids(recs), tc.want) {
			t.Errorf("QueryAppended(after %+v, up to %d, limit %d) = %v, %v; want %v", tc.after, tc.upTo, tc.limit, ids(recs), err, tc.want)
		}
		if len(api.queries) != DayShards {
			t.Errorf("QueryAppended made %d Queries, want one per shard (%d)", len(api.queries), DayShards)
		}
		for _, in := range api.queries {
			wellFormed(t, in)
			if f := aws.ToString(in.FilterExpression); !regexp.MustCompile(`#f1 = :f1 AND #t >= :tlo`).MatchString(f) {
				t.Errorf("QueryAppended's filter %q: want the correlation and since", f)
			}
		}
	}
	api.queries = nil
	for _, q := range []audit.Query{{Correlation: "corr", AppendedUpTo: first}, {Correlation: "corr", Actor: "ada", AppendedUpTo: first}, {Since: at, Until: at.Add(time.Hour), AppendedUpTo: first}} {
		if _, err := l.Query(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	if len(api.queries) != 2+DayShards {
		t.Fatalf("%d Queries", len(api.queries))
	}
	for _, in := range api.queries {
		wellFormed(t, in)
		if f := aws.ToString(in.FilterExpression); !regexp.MustCompile(`\(attribute_not_exists\(#ap\) OR #ap <= :ap\)$`).MatchString(f) {
			t.Errorf("Query of %s up to a horizon: filter %q", aws.ToString(in.IndexName), f)
		}
	}
}

// Verify finds a record a reader catching up would miss: moved to another by-appended shard,
// or its stamp removed after records of the chain that have one.
func TestAuditVerifyChecksTheAppendOrder(t *testing.T) {
	r := audit.Record{MessageID: "m1", Chain: "c", Seq: 2, Appended: 42}
	item := func(r audit.Record, edit func(map[string]types.AttributeValue)) map[string]types.AttributeValue {
		it := recordItem(r)
		if edit != nil {
			edit(it)
		}
		return it
	}
	other := strconv.Itoa((int(appendShard("m1")[0]-'0') + 1) % DayShards)
	legacy := r
	legacy.Appended = 0
	for _, tc := range []struct {
		name    string
		it      map[string]types.AttributeValue
		rec     audit.Record
		stamped bool
		bad     bool
	}{
		{"as appended", item(r, nil), r, true, false},
		{"before the stamp was kept", item(legacy, nil), legacy, false, false},
		{"another shard", item(r, func(it map[string]types.AttributeValue) { it[attrAppendShard] = str(other) }), r, true, true},
		{"no shard", item(r, func(it map[string]types.AttributeValue) { delete(it, attrAppendShard) }), r, false, true},
		{"stamp removed", item(legacy, nil), legacy, true, true},
	} {
		if what := appendedTamper(tc.it, tc.rec, tc.stamped); (what != "") != tc.bad {
			t.Errorf("%s: %q, want tampering found: %v", tc.name, what, tc.bad)
		}
	}
}
