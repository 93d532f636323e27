package embedded

// Queue: queue.Queue and queue.DeadLetters on the embedded SQLite file, with SQS semantics.
//
// Contract beyond the interfaces (checked by queuetest plus queue_test.go):
//   - Queues need no creation: a name is a queue as soon as something is sent to it. Names and
//     bodies must be non-empty (SQS refuses empty bodies); Receive's max must be 1..10 and
//     visibility 0..12h, as with SQS.
//   - Order: a Receive hands out visible messages in the order they became visible (send order,
//     a message whose visibility expired queues up behind what was sent meanwhile), except
//     that messages of one GroupID always come in send order.
//   - FIFO groups: while any message of a group is in flight (received, visibility not yet
//     expired, not deleted) no other message of that group is delivered; one Receive may hand
//     out several messages of an idle group, in order (as SQS FIFO queues do).
//   - Dedup: a Send with a non-empty DedupID that was already sent to the same queue in the
//     last 5 minutes is accepted and dropped, even if the first message is already deleted.
//   - Every receive counts — but one an Exchange settles as unhandled (pipeline.Settlement's
//     Unhandled: put back because its key is in progress elsewhere), whose count goes back down.
//     A message that was received MaxReceives times is, on the next receive that would deliver
//     it, moved to the dead letters with reason "max receives (N) exceeded" instead (an Exchange
//     returns such moves, Exchanged.Dead). Kill moves it at once with the caller's reason.
//   - A receipt handle is current until the message is received again, deleted or
//     dead-lettered; Delete, ChangeVisibility and Kill with any other handle fail with an error
//     matching queue.ErrStaleReceipt. A current handle stays usable after the visibility
//     expired as long as nobody received the message again (as with SQS).
//   - Redrive moves a queue's dead letters back, oldest first, keeping message id and group,
//     with the receive count reset to 0; they queue up behind the messages already there.
//   - Crash safety: state lives only in the file. A process that dies holding deliveries loses
//     nothing: they come back when their visibility expires, to any process using the file, or
//     at once when another process on the host sees that the holder is gone
//     (ReleaseAbandoned, leases.go).
//   - Receive's wait polls the file every PollInterval (other processes' sends, expired
//     visibility) and wakes at once on a Send, ChangeVisibility(0), Redrive or Exchange send
//     to its queue made through any Queue of this process on the same file. A Receive takes
//     the write lock at once when a message may be there, else only once the read-only check
//     finds one: after this process's last receive from the queue came back short, until
//     something is sent to it.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usekarma/karma/shared/queue"
)

var (
	_ queue.Queue       = (*Queue)(nil)
	_ queue.DeadLetters = (*Queue)(nil)
)

const (
	// DefaultPollInterval is how often a waiting Receive looks at the file again.
	DefaultPollInterval = 20 * time.Millisecond
	// DedupWindow is how long a DedupID suppresses later sends with the same id (SQS: 5 min).
	DedupWindow = 5 * time.Minute
	// MaxReceiveBatch is the largest max a Receive accepts (SQS: 10).
	MaxReceiveBatch = 10
	// MaxVisibility is the longest visibility timeout (SQS: 12 hours).
	MaxVisibility = 12 * time.Hour
)

// QueueOptions tunes NewQueue; the zero value means the defaults.
type QueueOptions struct {
	// MaxReceives is how many receives a message gets before it is dead-lettered
	// (0 = queue.DefaultMaxReceives).
	MaxReceives int
	// PollInterval is how often Receive's wait checks the file (0 = DefaultPollInterval).
	PollInterval time.Duration
}

// Queue is the embedded queue.Queue and queue.DeadLetters. Safe for concurrent use, and any
// number of Queues (in one process or several) may share one file.
type Queue struct {
	db          *DB
	maxReceives int
	poll        time.Duration
	wake        *waker
	lastPrune   atomic.Int64 // unix nanos of the last dedup-table prune
	grouped     sync.Map     // queue name -> true: a receive found a FIFO group (receiveFast)
}

// NewQueue creates the queue tables if needed.
func NewQueue(ctx context.Context, db *DB, opts QueueOptions) (*Queue, error) {
	if db == nil || db.SQL == nil {
		return nil, errors.New("embedded queue: NewQueue needs a DB")
	}
	if opts.MaxReceives < 0 || opts.PollInterval < 0 {
		return nil, fmt.Errorf("embedded queue: negative option in %+v", opts)
	}
	if opts.MaxReceives == 0 {
		opts.MaxReceives = queue.DefaultMaxReceives
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	err := db.migrate(ctx,
		// seq (the rowid) orders messages: a new row's seq exceeds every existing one.
		`CREATE TABLE IF NOT EXISTS messages (
			seq           INTEGER PRIMARY KEY,
			id            TEXT NOT NULL,              -- UUID
			queue         TEXT NOT NULL,
			body          BLOB NOT NULL,
			group_id      TEXT NOT NULL DEFAULT '',
			dedup_id      TEXT NOT NULL DEFAULT '',
			sent_at       INTEGER NOT NULL,           -- unix nanoseconds
			visible_at    INTEGER NOT NULL,           -- unix nanoseconds
			receive_count INTEGER NOT NULL DEFAULT 0,
			receipt       TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX IF NOT EXISTS messages_visible ON messages(queue, visible_at)`,
		`CREATE INDEX IF NOT EXISTS messages_group ON messages(queue, group_id) WHERE group_id != ''`,
		`CREATE TABLE IF NOT EXISTS dead_letters (
			id            TEXT NOT NULL,
			queue         TEXT NOT NULL,
			body          BLOB NOT NULL,
			group_id      TEXT NOT NULL DEFAULT '',
			sent_at       INTEGER NOT NULL,
			reason        TEXT NOT NULL,
			receive_count INTEGER NOT NULL,
			dead_at       INTEGER NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters(queue, dead_at)`,
		// DedupIDs seen in the last DedupWindow, including those of messages already gone.
		`CREATE TABLE IF NOT EXISTS message_dedup (
			queue    TEXT NOT NULL,
			dedup_id TEXT NOT NULL,
			sent_at  INTEGER NOT NULL,
			PRIMARY KEY (queue, dedup_id)) WITHOUT ROWID`,
	)
	if err != nil {
		return nil, err
	}
	// The process holding a message in flight (leases.go).
	if err := db.addColumn(ctx, "messages", "holder", "TEXT NOT NULL DEFAULT ''"); err != nil {
		return nil, err
	}
	return &Queue{db: db, maxReceives: opts.MaxReceives, poll: opts.PollInterval, wake: wakerFor(db)}, nil
}
