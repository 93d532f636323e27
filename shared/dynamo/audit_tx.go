package dynamo

// The transactions of an append: packing chains into them, their actions, and reading and
// refreshing the chain heads they are conditional on.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// pack groups the next records of active chains into transactions within the limits: a chain
// gets as many records as fit in a transaction of its own; chains whose batch fits in the
// transaction being filled join it.
func (l *AuditLog) pack(active []*chainWork) [][]segment {
	var txs [][]segment
	var cur []segment
	actions, bytes := 0, 0
	for _, w := range active {
		n, a, b := l.batchLen(w, l.opts.MaxTransactActions, maxTxBytes)
		if len(cur) > 0 && (actions+a > l.opts.MaxTransactActions || bytes+b > maxTxBytes) {
			txs = append(txs, cur)
			cur, actions, bytes = nil, 0, 0
		}
		cur = append(cur, segment{w: w, n: n})
		actions, bytes = actions+a, bytes+b
	}
	if len(cur) > 0 {
		txs = append(txs, cur)
	}
	return txs
}

// batchLen is how many of w's records fit in maxActions and maxBytes (at least one), and the
// actions and bytes they take with the chain's head (and directory entry, for a new chain).
func (l *AuditLog) batchLen(w *chainWork, maxActions, maxBytes int) (n, actions, bytes int) {
	actions, bytes = 1, 200 // the head
	if w.h.seq == 0 {
		actions, bytes = 2, 300 // and the chain directory entry
	}
	for _, p := range w.recs {
		a, b := 2, p.size+len(p.rec.MessageID)+len(p.rec.Chain)+100
		if n > 0 && (actions+a > maxActions || bytes+b > maxBytes) {
			break
		}
		actions, bytes, n = actions+a, bytes+b, n+1
	}
	return n, actions, bytes
}

// txFor builds the transaction writing segs; written[i] is the head segs[i] leaves its chain at.
// Its records are stamped appended with the clock now, at each attempt: what audit.Page's
// catching up reads them by (Horizon).
func (l *AuditLog) txFor(segs []segment) (*dynamodb.TransactWriteItemsInput, []head) {
	var items []types.TransactWriteItem
	written := make([]head, len(segs))
	appended := l.now().UnixNano()
	for i, sg := range segs {
		var its []types.TransactWriteItem
		its, written[i] = l.chainItems(sg.w.chain, sg.w.h, sg.w.recs[:sg.n], appended)
		items = append(items, its...)
	}
	return &dynamodb.TransactWriteItemsInput{TransactItems: items}, written
}

// chainItems are the transaction actions appending batch to chain after h, and the new head.
func (l *AuditLog) chainItems(chain string, h head, batch []pending, appended int64) ([]types.TransactWriteItem, head) {
	table := aws.String(l.table)
	pk := str(chainPrefix + chain)
	var items []types.TransactWriteItem
	prev := h
	for _, p := range batch {
		r := p.rec
		r.Seq, r.PrevHash = prev.seq+1, prev.hash
		r.Hash = r.ComputeHash(r.PrevHash)
		r.Appended = appended
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{TableName: table, Item: recordItem(r),
				ConditionExpression: aws.String("attribute_not_exists(pk)")}},
			types.TransactWriteItem{Put: &types.Put{TableName: table,
				Item: map[string]types.AttributeValue{attrPK: str(msgPrefix + r.MessageID), attrSK: str(msgSK),
					attrChain: str(chain), attrSeq: num(r.Seq)},
				ConditionExpression: aws.String("attribute_not_exists(pk)")}})
		prev = head{seq: r.Seq, hash: r.Hash, exists: true}
	}
	headPut := &types.Put{TableName: table,
		Item: map[string]types.AttributeValue{attrPK: pk, attrSK: str(headSK), attrSeq: num(prev.seq), attrHash: str(prev.hash)}}
	if h.seq == 0 {
		headPut.ConditionExpression = aws.String("attribute_not_exists(pk)")
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: table,
			Item: map[string]types.AttributeValue{attrPK: str(chainsPK), attrSK: str(chain)}}})
	} else {
		headPut.ConditionExpression = aws.String("#seq = :prev")
		headPut.ExpressionAttributeNames = map[string]string{"#seq": attrSeq}
		headPut.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": num(h.seq)}
	}
	return append(items, types.TransactWriteItem{Put: headPut}), prev
}

// readHeads sets each work's head from this process's hint, or reads the heads it has no hint
// of: one consistent BatchGetItem per 100 chains.
func (l *AuditLog) readHeads(ctx context.Context, works []*chainWork) error {
	var unknown []*chainWork
	for _, w := range works {
		if h, ok := l.hint(w.chain); ok {
			w.h = h
		} else {
			unknown = append(unknown, w)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	keys := make([]map[string]types.AttributeValue, len(unknown))
	for i, w := range unknown {
		keys[i] = map[string]types.AttributeValue{attrPK: str(chainPrefix + w.chain), attrSK: str(headSK)}
	}
	items, err := batchGet(ctx, l.client, l.table, keys)
	if err != nil {
		return wrap("audit append: read chain heads", l.table, "", err)
	}
	heads := map[string]head{}
	for _, it := range items {
		pk, _ := getStr(it, attrPK)
		h, err := headFromItem(it)
		if err != nil {
			return fmt.Errorf("dynamo: audit append: %s: unreadable HEAD item: %w", pk, err)
		}
		heads[strings.TrimPrefix(pk, chainPrefix)] = h
	}
	for _, w := range unknown {
		w.h = heads[w.chain] // zero for a new chain
	}
	return nil
}

// refresh re-reads the heads of chains whose transaction was cancelled and drops their
// records whose message ids exist now (one consistent BatchGetItem per 100 keys). A chain
// whose head moved or whose messages appeared lost a race: its attempts count. When nothing
// changed for any of them (a conflict with a transaction still in flight), all count.
func (l *AuditLog) refresh(ctx context.Context, works []*chainWork) error {
	var keys []map[string]types.AttributeValue
	for _, w := range works {
		keys = append(keys, map[string]types.AttributeValue{attrPK: str(chainPrefix + w.chain), attrSK: str(headSK)})
		for _, p := range w.recs {
			keys = append(keys, map[string]types.AttributeValue{attrPK: str(msgPrefix + p.rec.MessageID), attrSK: str(msgSK)})
		}
	}
	items, err := batchGet(ctx, l.client, l.table, keys, attrPK, attrSK, attrSeq, attrHash)
	if err != nil {
		return wrap("audit append: re-read chains", l.table, "", err)
	}
	heads, exist := map[string]head{}, map[string]bool{}
	for _, it := range items {
		pk, _ := getStr(it, attrPK)
		if id, ok := strings.CutPrefix(pk, msgPrefix); ok {
			exist[id] = true
			continue
		}
		h, err := headFromItem(it)
		if err != nil {
			return fmt.Errorf("dynamo: audit append: %s: unreadable HEAD item: %w", pk, err)
		}
		heads[strings.TrimPrefix(pk, chainPrefix)] = h
	}
	var moved []*chainWork
	for _, w := range works {
		n := len(w.recs)
		w.recs = slices.DeleteFunc(w.recs, func(p pending) bool { return exist[p.rec.MessageID] })
		h := heads[w.chain]
		if h.seq != w.h.seq || h.hash != w.h.hash || len(w.recs) != n {
			moved = append(moved, w)
		}
		w.h = h
		l.setHint(w.chain, h, true)
	}
	if len(moved) == 0 {
		moved = works
	}
	for _, w := range moved {
		if w.attempts++; w.attempts >= l.opts.MaxAttempts && len(w.recs) > 0 {
			l.setHint(w.chain, head{}, false)
			w.err = &ConflictError{Op: "audit append", Table: l.table,
				Key: "chain " + w.chain + " (if no other appender is running, its HEAD item may be missing or altered)", Attempts: w.attempts}
		}
	}
	return nil
}

// sleep backs off before the attempt-th retry: full jitter up to 2^attempt ms, at most 200 ms.
func sleep(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(attempt, 8), 200*time.Millisecond)) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
