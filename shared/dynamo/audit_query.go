package dynamo

// Querying the audit log: one index per auditor question (see AuditLog).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
)

// Query returns the records matching every set field of q, by OccurredAt, chain, Seq.
func (l *AuditLog) Query(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	lo, hi, ok := timeBounds(q.Since, q.Until)
	if !ok {
		return []audit.Record{}, nil
	}
	fields := []struct{ index, attr, value string }{
		{IndexDeployment, attrDeployment, q.DeploymentID},
		{IndexCorrelation, attrCorrelation, q.Correlation},
		{IndexComponent, attrComponent, q.Component},
		{IndexActor, attrActor, q.Actor},
	}
	key := slices.IndexFunc(fields, func(f struct{ index, attr, value string }) bool { return f.value != "" })
	for _, f := range fields {
		if len(f.value) > maxPartitionKey {
			// Append refuses such a value (an index key): no record has it. DynamoDB would refuse
			// the Query as invalid instead of answering that nothing matches.
			return []audit.Record{}, nil
		}
	}
	if key >= 0 {
		var filters []attrValue
		for i, f := range fields {
			if i != key && f.value != "" {
				filters = append(filters, attrValue{f.attr, f.value})
			}
		}
		f := fields[key]
		in := l.indexQuery(f.index, f.attr, f.value, lo, hi, filters)
		upToFilter(in, q.AppendedUpTo)
		recs, err := l.collect(ctx, in, q.Limit, in.FilterExpression != nil)
		if err != nil {
			return nil, err
		}
		return finish(recs, q.Limit), nil
	}
	return l.queryDays(ctx, lo, hi, q.Limit, q.AppendedUpTo)
}

// upToFilter adds to in's filter that the record was appended up to upTo (0: no bound), or
// before appended was kept.
func upToFilter(in *dynamodb.QueryInput, upTo int64) {
	if upTo == 0 {
		return
	}
	in.ExpressionAttributeNames["#ap"] = attrAppended
	in.ExpressionAttributeValues[":ap"] = num(upTo)
	f := "(attribute_not_exists(#ap) OR #ap <= :ap)"
	if in.FilterExpression != nil {
		f = *in.FilterExpression + " AND " + f
	}
	in.FilterExpression = aws.String(f)
}

// Horizon is the clock less AppendSettle: records are stamped appended with their appender's
// clock when their transaction is built, so one not yet readable, if AppendSettle covers the
// clocks' skew, its transaction's time in flight and the index's lag, will have a later stamp.
func (l *AuditLog) Horizon(ctx context.Context) (int64, error) {
	return l.now().Add(-l.opts.AppendSettle).UnixNano(), nil
}

// QueryAppended answers q in append order from the by-appended index: one Query per shard
// (DayShards), appended between after and upTo in the key condition, q's fields and time range
// in the filter.
func (l *AuditLog) QueryAppended(ctx context.Context, q audit.Query, after audit.AppendPos, upTo int64) ([]audit.Record, error) {
	lo, hi, ok := timeBounds(q.Since, q.Until)
	if !ok || upTo < after.Appended {
		return []audit.Record{}, nil
	}
	fields := []attrValue{{attrDeployment, q.DeploymentID}, {attrCorrelation, q.Correlation}, {attrComponent, q.Component}, {attrActor, q.Actor}}
	var filters []string
	names := map[string]string{"#s": attrAppendShard, "#a": attrAppended}
	values := map[string]types.AttributeValue{":lo": num(after.Appended), ":hi": num(upTo)}
	for i, f := range fields {
		if f.value == "" {
			continue
		}
		if len(f.value) > maxPartitionKey {
			return []audit.Record{}, nil // as Query: no record has it
		}
		n, v := "#f"+strconv.Itoa(i), ":f"+strconv.Itoa(i)
		names[n], values[v] = f.attr, str(f.value)
		filters = append(filters, n+" = "+v)
	}
	if lo != "" || hi != "" {
		names["#t"] = attrOccurredAt
	}
	if lo != "" {
		values[":tlo"] = str(lo)
		filters = append(filters, "#t >= :tlo")
	}
	if hi != "" {
		values[":thi"] = str(hi)
		filters = append(filters, "#t <= :thi")
	}
	recs, err := eachShard(func(s int) ([]audit.Record, error) {
		in := &dynamodb.QueryInput{
			TableName:                 aws.String(l.table),
			IndexName:                 aws.String(IndexAppended),
			KeyConditionExpression:    aws.String("#s = :s AND #a BETWEEN :lo AND :hi"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: maps.Clone(values),
		}
		in.ExpressionAttributeValues[":s"] = str(strconv.Itoa(s))
		if len(filters) > 0 {
			in.FilterExpression = aws.String(strings.Join(filters, " AND "))
		}
		return l.collectAppended(ctx, in, after, q.Limit)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b audit.Record) int {
		if a.Appended != b.Appended {
			return cmp.Compare(a.Appended, b.Appended)
		}
		if c := strings.Compare(a.Chain, b.Chain); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	if q.Limit > 0 && len(recs) > q.Limit {
		recs = recs[:q.Limit]
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return recs, nil
}

// collectAppended runs in (one shard of by-appended, in appended order) page by page, keeping
// the records after `after`; with limit > 0 it stops once it holds limit records and every
// record appended at the same instant as the limit-th.
func (l *AuditLog) collectAppended(ctx context.Context, in *dynamodb.QueryInput, after audit.AppendPos, limit int) ([]audit.Record, error) {
	var out []audit.Record
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			r, err := indexRecord(it)
			if err != nil {
				return false, err
			}
			if after.Before(r) {
				out = append(out, r)
			}
		}
		return limit <= 0 || len(out) < limit || out[len(out)-1].Appended == out[limit-1].Appended, nil
	})
	if err != nil {
		return nil, wrap("audit query", l.table, "index "+IndexAppended, err)
	}
	return out, nil
}

type attrValue struct{ attr, value string }

// queryDays answers a query by time alone from the by-day index, day by day.
func (l *AuditLog) queryDays(ctx context.Context, lo, hi string, limit int, upTo int64) ([]audit.Record, error) {
	days, err := l.daysBetween(ctx, lo, hi)
	if err != nil {
		return nil, err
	}
	out := []audit.Record{}
	for _, day := range days {
		want := 0
		if limit > 0 {
			want = limit - len(out)
		}
		recs, err := eachShard(func(s int) ([]audit.Record, error) {
			in := l.indexQuery(IndexDay, attrDayShard, day+"#"+strconv.Itoa(s), lo, hi, nil)
			upToFilter(in, upTo)
			return l.collect(ctx, in, want, in.FilterExpression != nil)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, finish(recs, want)...)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, nil
}

// daysBetween lists the UTC days to query for [lo, hi] (formatted bounds, "" = open): both
// days of a closed range within one or two UTC days, else the day directory's entries in the
// range (one Query).
func (l *AuditLog) daysBetween(ctx context.Context, lo, hi string) ([]string, error) {
	if lo != "" && hi != "" {
		from, _ := time.Parse(time.DateOnly, lo[:10])
		to, _ := time.Parse(time.DateOnly, hi[:10])
		if to.Sub(from) <= 24*time.Hour {
			var days []string
			for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
				days = append(days, d.Format(time.DateOnly))
			}
			return days, nil
		}
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(daysPK)},
	}
	cond := "#pk = :pk"
	switch {
	case lo != "" && hi != "":
		cond += " AND #sk BETWEEN :lo AND :hi"
	case lo != "":
		cond += " AND #sk >= :lo"
	case hi != "":
		cond += " AND #sk <= :hi"
	}
	if lo != "" || hi != "" {
		in.ExpressionAttributeNames["#sk"] = attrSK
	}
	if lo != "" {
		in.ExpressionAttributeValues[":lo"] = str(lo[:10])
	}
	if hi != "" {
		in.ExpressionAttributeValues[":hi"] = str(hi[:10])
	}
	in.KeyConditionExpression = aws.String(cond)
	var days []string
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			d, err := getStr(it, attrSK)
			if err != nil {
				return false, err
			}
			days = append(days, d)
		}
		return true, nil
	})
	if err != nil {
		return nil, wrap("audit query: list days", l.table, "", err)
	}
	return days, nil
}

// indexQuery is a Query of index for attr = value, occurred_at within [lo, hi], matching filters.
func (l *AuditLog) indexQuery(index, attr, value, lo, hi string, filters []attrValue) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		IndexName:                 aws.String(index),
		ExpressionAttributeNames:  map[string]string{"#k": attr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(value)},
	}
	cond := "#k = :k"
	if lo != "" || hi != "" {
		in.ExpressionAttributeNames["#t"] = attrOccurredAt
	}
	switch {
	case lo != "" && hi != "":
		cond += " AND #t BETWEEN :lo AND :hi"
	case lo != "":
		cond += " AND #t >= :lo"
	case hi != "":
		cond += " AND #t <= :hi"
	}
	if lo != "" {
		in.ExpressionAttributeValues[":lo"] = str(lo)
	}
	if hi != "" {
		in.ExpressionAttributeValues[":hi"] = str(hi)
	}
	in.KeyConditionExpression = aws.String(cond)
	var fs []string
	for i, f := range filters {
		n, v := "#f"+strconv.Itoa(i), ":f"+strconv.Itoa(i)
		in.ExpressionAttributeNames[n] = f.attr
		in.ExpressionAttributeValues[v] = str(f.value)
		fs = append(fs, n+" = "+v)
	}
	if len(fs) > 0 {
		in.FilterExpression = aws.String(strings.Join(fs, " AND "))
	}
	return in
}

// collect runs in page by page. With limit > 0 it stops once it holds limit records and every
// record tied on time with the limit-th (results come in occurred_at order; ties are ordered
// by chain and seq afterwards).
func (l *AuditLog) collect(ctx context.Context, in *dynamodb.QueryInput, limit int, filtered bool) ([]audit.Record, error) {
	if limit > 0 && !filtered {
		in.Limit = aws.Int32(int32(min(limit+1, 1000)))
	}
	var out []audit.Record
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			r, err := indexRecord(it)
			if err != nil {
				return false, err
			}
			out = append(out, r)
		}
		return limit <= 0 || len(out) < limit || !out[len(out)-1].OccurredAt.After(out[limit-1].OccurredAt), nil
	})
	if err != nil {
		return nil, wrap("audit query", l.table, "index "+aws.ToString(in.IndexName), err)
	}
	return out, nil
}

// indexRecord reads a record an index found.
func indexRecord(it map[string]types.AttributeValue) (audit.Record, error) {
	r, err := recordFromItem(it)
	pk, _ := getStr(it, attrPK)
	sk, _ := getStr(it, attrSK)
	if err != nil {
		return r, fmt.Errorf("unreadable record %s %s: %w", pk, sk, err)
	}
	// An index holds every item with its attributes, wherever it is stored: one that is not
	// where its chain's record of that seq is stored is no record of the log (Verify walks
	// the chains' partitions and would never see it), so the question fails on it.
	if pk != chainPrefix+r.Chain || sk != seqKey(r.Seq) {
		return r, &audit.TamperError{Chain: r.Chain, Seq: r.Seq, What: fmt.Sprintf("an item stored at %s %s claims to be this record "+
			"(an index found it): it is not in the chain", pk, sk)}
	}
	return r, nil
}

// pages runs a Query until the last page or until fn returns false.
func (l *AuditLog) pages(ctx context.Context, in *dynamodb.QueryInput, fn func([]map[string]types.AttributeValue) (bool, error)) error {
	for {
		out, err := l.client.Query(ctx, in)
		if err != nil {
			return err
		}
		more, err := fn(out.Items)
		if err != nil {
			return err
		}
		if !more || len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// finish orders recs by OccurredAt, chain, Seq and applies limit.
func finish(recs []audit.Record, limit int) []audit.Record {
	slices.SortStableFunc(recs, func(a, b audit.Record) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := strings.Compare(a.Chain, b.Chain); c != 0 {
			return c
		}
		return int(a.Seq - b.Seq)
	})
	if limit > 0 && len(recs) > limit {
		recs = recs[:limit]
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return recs
}

// timeBounds turns the half-open [since, until) into inclusive occurred_at bounds ("" = open);
// ok is false when nothing can match.
func timeBounds(since, until time.Time) (lo, hi string, ok bool) {
	if !since.IsZero() {
		switch s := since.UTC(); {
		case s.After(maxTime):
			return "", "", false
		case s.After(minTime):
			lo = s.Format(tsLayout)
		}
	}
	if !until.IsZero() {
		switch u := until.UTC(); {
		case !u.After(minTime):
			return "", "", false
		case !u.After(maxTime):
			hi = u.Add(-time.Nanosecond).Format(tsLayout)
		}
	}
	if lo != "" && hi != "" && lo > hi {
		return "", "", false
	}
	return lo, hi, true
}

// eachShard runs query for each of the DayShards partitions at once and returns what they read
// together (in no order), or their errors joined.
func eachShard(query func(shard int) ([]audit.Record, error)) ([]audit.Record, error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		recs []audit.Record
		errs []error
	)
	for s := range DayShards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := query(s)
			mu.Lock()
			defer mu.Unlock()
			recs = append(recs, r...)
			errs = append(errs, err)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return recs, nil
}
