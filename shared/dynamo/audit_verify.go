package dynamo

// Checking the audit log: Verify, Chains, Heads, RecordAt and the chain heads they read.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/usekarma/karma/shared/audit"
)

// Verify checks chain's records in seq order (one consistent Query per page), then its head
// (audit.ChainCheck). Records and head are read one after the other, so an append landing in
// between moves the head past the records read: then the records after them are read too,
// for as long as that finds more, before the head is held against them.
//
// Beyond the links, it checks what the readers find records by, which the hash does not cover:
// each record's by-day index partition (day_shard) is the one its time and message id give, and
// each of its days is in the day directory — else a time query would skip it (checkDays); and
// its by-appended partition (append_shard) is the one its message id gives, the record stamped
// appended if one before it in the chain was — else a reader catching up (audit.Page) would
// skip it.
func (l *AuditLog) Verify(ctx context.Context, chain string) error {
	days := map[string]int64{} // day -> the chain's first record of the day
	if err := l.verifyLinks(ctx, chain, days); err != nil {
		return err
	}
	return l.checkDays(ctx, chain, days)
}

// verifyLinks is Verify's walk of the chain's records and head.
func (l *AuditLog) verifyLinks(ctx context.Context, chain string, days map[string]int64) error {
	check := audit.NewChainCheck(chain)
	prev := int64(-1)
	stamped := false // a record of the chain was stamped appended: so must every later one be
	for from := int64(1); ; {
		if err := l.checkRecords(ctx, check, chain, from, days, &stamped); err != nil {
			return err
		}
		last := check.Last().Seq
		h, err := l.head(ctx, chain, true)
		var e *Error
		switch {
		case errors.As(err, &e):
			return err
		case err != nil:
			return &audit.TamperError{Chain: chain, Seq: last, What: err.Error()}
		case !h.exists:
			return check.End(nil)
		case h.seq <= last || last == prev: // the head is not ahead, or the last read found nothing new
			return check.End(&audit.Head{Chain: chain, Seq: h.seq, Hash: h.hash})
		}
		prev, from = last, last+1
	}
}

// checkRecords feeds check chain's records from seq from on, and notes each record's day.
func (l *AuditLog) checkRecords(ctx context.Context, check *audit.ChainCheck, chain string, from int64, days map[string]int64, stamped *bool) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :from AND :to"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#sk": attrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(chainPrefix + chain), ":from": str(seqKey(from)), ":to": str(seqPrefix + "~")},
		ConsistentRead:            aws.Bool(true),
	}
	var bad error
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			sk, _ := getStr(it, attrSK)
			slot, err := strconv.ParseInt(strings.TrimPrefix(sk, seqPrefix), 10, 64)
			if err != nil {
				bad = &audit.TamperError{Chain: chain, Seq: check.Last().Seq + 1, What: fmt.Sprintf("unexpected item %q in the chain", sk)}
				return false, nil
			}
			r, err := recordFromItem(it)
			if err != nil {
				bad = &audit.TamperError{Chain: chain, Seq: slot, What: fmt.Sprintf("unreadable: %v", err)}
				return false, nil
			}
			if bad = check.Next(slot, r); bad != nil {
				return false, nil
			}
			if got, want := optStr(it, attrDayShard), dayShard(r.OccurredAt, r.MessageID); got != want {
				bad = &audit.TamperError{Chain: chain, Seq: slot, What: fmt.Sprintf("%s %q is not %q, the one its time and message id give: "+
					"time queries would not find it", attrDayShard, got, want)}
				return false, nil
			}
			if what := appendedTamper(it, r, *stamped); what != "" {
				bad = &audit.TamperError{Chain: chain, Seq: slot, What: what}
				return false, nil
			}
			*stamped = *stamped || r.Appended != 0
			if day := r.OccurredAt.UTC().Format(time.DateOnly); days[day] == 0 {
				days[day] = slot
			}
		}
		return true, nil
	})
	if err != nil {
		return wrap("audit verify", l.table, "chain "+chain, err)
	}
	return bad
}

// checkDays checks that the day directory lists every day of days (a time query reads only the
// days it lists): one consistent Query of the directory.
func (l *AuditLog) checkDays(ctx context.Context, chain string, days map[string]int64) error {
	if len(days) == 0 {
		return nil
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(daysPK)},
		ConsistentRead:            aws.Bool(true),
	}
	listed := map[string]bool{}
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			listed[optStr(it, attrSK)] = true
		}
		return true, nil
	})
	if err != nil {
		return wrap("audit verify: day directory", l.table, "chain "+chain, err)
	}
	var missing []string
	for day := range days {
		if !listed[day] {
			missing = append(missing, day)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return &audit.TamperError{Chain: chain, Seq: days[missing[0]], What: fmt.Sprintf("day %s is missing from the day directory (pk %s): "+
		"time queries skip its records", missing[0], daysPK)}
}

// optStr is a string attribute, "" when absent or not a string.
func optStr(it map[string]types.AttributeValue, name string) string {
	v, _ := getOptStr(it, name)
	return v
}

// Heads lists the head of every chain in the chain directory, sorted by chain: the directory's
// Query, then one consistent BatchGetItem per 100 heads. A missing head is listed with Seq 0.
func (l *AuditLog) Heads(ctx context.Context) ([]audit.Head, error) {
	chains, err := l.Chains(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]map[string]types.AttributeValue, len(chains))
	for i, c := range chains {
		keys[i] = map[string]types.AttributeValue{attrPK: str(chainPrefix + c), attrSK: str(headSK)}
	}
	items, err := batchGet(ctx, l.client, l.table, keys)
	if err != nil {
		return nil, wrap("audit heads", l.table, "", err)
	}
	found := map[string]head{}
	for _, it := range items {
		pk, _ := getStr(it, attrPK)
		h, err := headFromItem(it)
		if err != nil {
			return nil, fmt.Errorf("dynamo: audit heads: %s: unreadable HEAD item: %w", pk, err)
		}
		found[strings.TrimPrefix(pk, chainPrefix)] = h
	}
	out := make([]audit.Head, len(chains))
	for i, c := range chains {
		h := found[c]
		out[i] = audit.Head{Chain: c, Seq: h.seq, Hash: h.hash}
	}
	return out, nil
}

// RecordAt reads the record stored at seq of chain (one consistent GetItem).
func (l *AuditLog) RecordAt(ctx context.Context, chain string, seq int64) (audit.Record, error) {
	key := fmt.Sprintf("chain %s seq %d", chain, seq)
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		Key:            map[string]types.AttributeValue{attrPK: str(chainPrefix + chain), attrSK: str(seqKey(seq))},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return audit.Record{}, wrap("audit read record", l.table, key, err)
	}
	if out.Item == nil {
		return audit.Record{}, fmt.Errorf("dynamo: audit: %s: %w", key, audit.ErrNotFound)
	}
	r, err := recordFromItem(out.Item)
	if err != nil {
		return audit.Record{}, fmt.Errorf("dynamo: audit: %s: unreadable record: %w", key, err)
	}
	return r, nil
}

// Chains lists every chain name, sorted: one consistent Query of the chain directory per page.
// Consistent, as the heads it leads to are read: an eventually consistent read may miss a chain
// created a moment before, which a checkpoint (TakeCheckpoint) would then leave out and
// VerifyLog not check.
func (l *AuditLog) Chains(ctx context.Context) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(chainsPK)},
		ConsistentRead:            aws.Bool(true),
	}
	out := []string{}
	err := l.pages(ctx, in, func(items []map[string]types.AttributeValue) (bool, error) {
		for _, it := range items {
			c, err := getStr(it, attrSK)
			if err != nil {
				return false, err
			}
			out = append(out, c)
		}
		return true, nil
	})
	if err != nil {
		return nil, wrap("audit chains", l.table, "", err)
	}
	slices.Sort(out) // DynamoDB orders by UTF-8 bytes, as Go does; sorting again costs nothing
	return out, nil
}

// head reads chain's head: from this process's hint unless fresh is set, else a consistent read.
func (l *AuditLog) head(ctx context.Context, chain string, fresh bool) (head, error) {
	if !fresh {
		if h, ok := l.hint(chain); ok {
			return h, nil
		}
	}
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		Key:            map[string]types.AttributeValue{attrPK: str(chainPrefix + chain), attrSK: str(headSK)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return head{}, wrap("audit: read chain head", l.table, "chain "+chain, err)
	}
	if out.Item == nil {
		return head{}, nil
	}
	h, err := headFromItem(out.Item)
	if err != nil {
		return head{}, fmt.Errorf("dynamo: audit: chain %s: unreadable HEAD item: %w", chain, err)
	}
	return h, nil
}

// appendedTamper says what is wrong with a record item's append order attributes, if anything:
// an append_shard other than its message id's, or none, or no appended stamp after a record of
// the chain that had one (stamped): records are stamped since the log kept the append order.
func appendedTamper(it map[string]types.AttributeValue, r audit.Record, stamped bool) string {
	shard := optStr(it, attrAppendShard)
	switch {
	case r.Appended == 0 && stamped:
		return fmt.Sprintf("no %s, after records that have one: a reader catching up with the log would not find it", attrAppended)
	case r.Appended == 0 && shard != "":
		return fmt.Sprintf("%s %q without %s", attrAppendShard, shard, attrAppended)
	case r.Appended != 0 && shard != appendShard(r.MessageID):
		return fmt.Sprintf("%s %q is not %q, the one its message id gives: a reader catching up with the log would not find it",
			attrAppendShard, shard, appendShard(r.MessageID))
	}
	return ""
}
