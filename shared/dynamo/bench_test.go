package dynamo_test

// Benchmarks of the DynamoDB audit log against KARMA_TEST_DYNAMODB (skipped without it):
//
//	KARMA_TEST_DYNAMODB=http://127.0.0.1:18000 go test -run '^$' -bench 'AuditAppend|EndpointCeiling' -benchtime 3000x ./shared/dynamo/
//	KARMA_TEST_DYNAMODB=http://127.0.0.1:18000 go test -run '^$' -bench AuditQuestions -benchtime 30x ./shared/dynamo/
//
// Append reports records/s, requests (API calls) and HTTP round trips (retries included) per
// record; EndpointCeiling sends the same transactions without the log, to show what the
// endpoint itself sustains; each auditor question reports its Query requests and round trips
// per question (one Query per page) and the records it returned. Figures against DynamoDB Local
// measure this code and Local, not DynamoDB: see docs/audit.md.

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/dynamo"
)

// benchRecord is a record of the size the audit worker appends: an envelope of ~1 KB.
func benchRecord(run string, i, chains int) audit.Record {
	c := i % chains
	r := rec(fmt.Sprintf("%s-m%07d", run, i), fmt.Sprintf("%s/dev/service/c%03d", run, c), base.Add(time.Duration(i)*time.Millisecond))
	r.Component = r.Chain
	r.DeploymentID = fmt.Sprintf("%s-dep-%03d", run, c)
	r.CorrelationID = fmt.Sprintf("%s-corr-%d", run, i/500)
	r.Actor = fmt.Sprintf("%s-actor-%d", run, i%4)
	r.Body = []byte(fmt.Sprintf(`{"id":%q,"type":"deployment.applied","version":1,"payload":{"change_set_id":"cs-1","deployment_id":%q,"component":%q,"runtime_version":7,"changed_keys":["private_subnet_ids","security_group_id"],"outputs":{"vpc_id":"vpc-0123456789abcdef0","private_subnet_ids":["subnet-0a1b2c3d4e5f60718","subnet-0a1b2c3d4e5f60719","subnet-0a1b2c3d4e5f60720"],"security_group_id":"sg-0123456789abcdef0"},"plan_summary":"Plan: 2 to add, 1 to change, 0 to destroy.","padding":%q}}`,
		r.MessageID, r.DeploymentID, r.Component, strings.Repeat("x", 400)))
	return r
}

// BenchmarkAuditAppend appends b.N records in calls of batch records spread over chains
// chains, from appenders goroutines (the audit workers of one or more processes).
func BenchmarkAuditAppend(b *testing.B) {
	for _, bc := range []struct {
		batch, chains, appenders, concurrency int
	}{
		{1, 1, 1, 16},
		{100, 1, 1, 16},
		{500, 50, 1, 16},
		{500, 50, 1, 2},
		{500, 50, 4, 16},
	} {
		name := fmt.Sprintf("batch=%d/chains=%d/appenders=%d/concurrency=%d", bc.batch, bc.chains, bc.appenders, bc.concurrency)
		b.Run(name, func(b *testing.B) {
			client, c := newClient(b)
			table := newTables(b, client).Audit
			run := fmt.Sprintf("r%d", time.Now().UnixNano())
			var next atomic.Int64
			c.reset()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for a := range bc.appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{MaxAttempts: 50, Concurrency: bc.concurrency})
					for {
						first := int(next.Add(int64(bc.batch))) - bc.batch
						if first >= b.N {
							return
						}
						var recs []audit.Record
						for i := first; i < min(first+bc.batch, b.N); i++ {
							// Appender a writes chain (i + a) % chains: appenders share chains.
							recs = append(recs, benchRecord(run, i+a, bc.chains))
							recs[len(recs)-1].MessageID = fmt.Sprintf("%s-m%07d", run, i)
						}
						if _, err := l.Append(b.Context(), recs...); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.Logf("N=%d in %v: %s", b.N, elapsed, c.durations())
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(c.total())/float64(b.N), "requests/record")
			b.ReportMetric(float64(c.all.Load())/float64(b.N), "roundtrips/record")
		})
	}
}

// BenchmarkEndpointCeiling measures what the endpoint itself sustains for the write pattern of
// Append, without the log: transactions of 49 record items (the same attributes and indexes,
// ~1.6 KB each) plus 49 message id markers plus a head, from 1 and 8 goroutines. Append's
// records/s divided by this is the log's own efficiency.
func BenchmarkEndpointCeiling(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) {
			client, c := newClient(b)
			table := newTables(b, client).Audit
			run := fmt.Sprintf("r%d", time.Now().UnixNano())
			S := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
			var next atomic.Int64
			c.reset()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						first := int(next.Add(49)) - 49
						if first >= b.N {
							return
						}
						var items []types.TransactWriteItem
						for i := first; i < min(first+49, b.N); i++ {
							r := benchRecord(run, i, 1)
							item := map[string]types.AttributeValue{
								"pk": S("CHAIN#" + r.Chain + fmt.Sprint(g)), "sk": S(fmt.Sprintf("SEQ#%020d", i)),
								"message_id": S(r.MessageID), "type": S(r.Type), "version": &types.AttributeValueMemberN{Value: "1"},
								"env": S(r.Env), "chain": S(r.Chain), "seq": &types.AttributeValueMemberN{Value: fmt.Sprint(i)},
								"component": S(r.Component), "deployment_id": S(r.DeploymentID), "correlation_id": S(r.CorrelationID),
								"causation_id": S(r.CausationID), "actor_kind": S(r.ActorKind), "actor": S(r.Actor),
								"occurred_at": S(r.OccurredAt.Format("2006-01-02T15:04:05.000000000Z")), "day_shard": S("2026-11-22#" + fmt.Sprint(i%4)),
								"body": S(string(r.Body)), "prev_hash": S(strings.Repeat("a", 64)), "hash": S(strings.Repeat("b", 64)),
							}
							items = append(items,
								types.TransactWriteItem{Put: &types.Put{TableName: &table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
								types.TransactWriteItem{Put: &types.Put{TableName: &table, Item: map[string]types.AttributeValue{
									"pk": S("MSG#" + r.MessageID), "sk": S("MSG"), "chain": S(r.Chain), "seq": &types.AttributeValueMemberN{Value: "1"}},
									ConditionExpression: aws.String("attribute_not_exists(pk)")}})
						}
						items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &table, Item: map[string]types.AttributeValue{
							"pk": S(fmt.Sprintf("CHAIN#h%d-%d", g, first)), "sk": S("HEAD"), "seq": &types.AttributeValueMemberN{Value: "1"}}}})
						if _, err := client.TransactWriteItems(b.Context(), &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.Logf("N=%d in %v: %s", b.N, elapsed, c.durations())
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		})
	}
}

// BenchmarkAuditQuestions asks each auditor question of a log of 5,000 records (50 components,
// 10 correlation ids, 4 actors, over 5 seconds of one day).
func BenchmarkAuditQuestions(b *testing.B) {
	client, c := newClient(b)
	table := newTables(b, client).Audit
	l := dynamo.NewAuditLog(client, table, dynamo.AuditOptions{})
	const n, chains = 5000, 50
	run := "q"
	var recs []audit.Record
	for i := range n {
		recs = append(recs, benchRecord(run, i, chains))
	}
	if _, err := l.Append(b.Context(), recs...); err != nil {
		b.Fatal(err)
	}
	for _, qc := range []struct {
		name string
		q    audit.Query
	}{
		{"a-deployment", audit.Query{DeploymentID: run + "-dep-007"}},
		{"b-component-history", audit.Query{Component: run + "/dev/service/c007", Since: base, Until: base.Add(time.Hour)}},
		{"c-correlation", audit.Query{Correlation: run + "-corr-3"}},
		{"d-actor", audit.Query{Actor: run + "-actor-1"}},
		{"d-actor-limit-50", audit.Query{Actor: run + "-actor-1", Limit: 50}},
		{"e-time-range-1s", audit.Query{Since: base.Add(time.Second), Until: base.Add(2 * time.Second)}},
		{"verify-chain", audit.Query{}},
	} {
		b.Run(qc.name, func(b *testing.B) {
			c.reset()
			got := 0
			for range b.N {
				if qc.name == "verify-chain" {
					if err := l.Verify(b.Context(), run+"/dev/service/c007"); err != nil {
						b.Fatal(err)
					}
					got += n / chains
					continue
				}
				recs, err := l.Query(b.Context(), qc.q)
				if err != nil {
					b.Fatal(err)
				}
				got += len(recs)
			}
			trips := c.all.Load()
			ops := c.reset()
			if ops["Scan"] != 0 {
				b.Fatalf("a Scan was sent: %v", ops)
			}
			b.ReportMetric(float64(ops["Query"])/float64(b.N), "queries/op")
			b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
			b.ReportMetric(float64(got)/float64(b.N), "records/op")
		})
	}
}
