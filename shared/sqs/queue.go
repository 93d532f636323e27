// Package sqs is queue.Queue and queue.DeadLetters on Amazon SQS (aws-sdk-go-v2), the
// production transport. It passes the same queuetest conformance suite as the embedded queue
// (against moto 5.2.5 in this repository's tests).
//
// Contract, beyond the interfaces:
//   - Names: the queue named "plan" is the SQS queue Prefix+"plan" (e.g. "karma-prod-plan"),
//     looked up once with GetQueueUrl and cached. A name ending in ".fifo" is a FIFO queue:
//     every message sent to it needs a GroupID; an empty DedupID leaves deduplication to the
//     queue (EnsureQueues enables content-based deduplication). On standard queues GroupID and
//     DedupID are ignored.
//   - Dead-letter queues: each queue's DLQ is the one its RedrivePolicy names (SQS moves a
//     message there on the receive after maxReceiveCount receives). EnsureQueues creates a queue
//     and its DLQ Prefix+name+"-dlq" (before ".fifo" for FIFO queues), DLQ retention 14 days.
//     With Options.CreateMissing a name that does not exist is created on first use (tests, local
//     runs); in AWS, Terraform creates them (see EnsureQueues for the exact attributes).
//   - Send uses SendMessageBatch (at most 10 entries and 256 KiB per call) and retries only the
//     failed entries that were not the sender's fault, with exponential backoff for at most
//     Options.SendRetry; a sender fault (bad body...) fails at once.
//   - Receive long-polls: WaitTimeSeconds is wait rounded up to whole seconds (at most 20; 0
//     short-polls), VisibilityTimeout is visibility rounded up to whole seconds. SQS has a
//     one-second clock: a 300 ms visibility hides a message for 1 s.
//   - Stale receipts: SQS accepts DeleteMessage with an old receipt handle of a message that was
//     received again since (moto even deletes the message with it), and a DeleteMessage of a
//     message already deleted. The Queue therefore remembers the receipts it handed out: a
//     receipt it saw superseded (the message received again through this Queue) or used up
//     (deleted, killed) fails with queue.ErrStaleReceipt without asking SQS. Receipts received
//     by other processes are checked by SQS alone: ReceiptHandleIsInvalid (malformed, another
//     queue's, message gone, expired) matches queue.ErrStaleReceipt, but a stale receipt of a
//     message that still exists may be accepted. Handlers are idempotent for this reason.
//   - Kill copies the delivery (remembered from Receive: SQS cannot read a message by receipt
//     handle) to the DLQ with message attributes karma-reason, karma-queue, karma-message-id,
//     karma-receive-count and karma-dead-at, then deletes the original. It first extends the
//     message's visibility, which validates the receipt. Kill needs a receipt this Queue
//     received; the Lambda runtime, whose receipts come in the event, uses DeadLetter instead.
//     A crash between the copy and the delete leaves the message in both queues (at least once).
//   - ListDead receives the whole DLQ (hiding its messages for ListVisibility while it reads)
//     and releases it again; it reports the letters of the queue asked for: those whose
//     karma-queue attribute or DeadLetterQueueSourceArn names it, and those that name no source
//     (messages SQS moved itself; moto sets no DeadLetterQueueSourceArn). For letters SQS moved
//     itself the reason is "max receives (N) exceeded", ReceiveCount is the DLQ's
//     ApproximateReceiveCount (it counts listings too) and DeadAt is the original send time (SQS
//     keeps it). Listing a FIFO DLQ shows at most 10 letters per message group (SQS hides the
//     rest of a group while the first are received). Not meant to run concurrently with another
//     ListDead or Redrive of the same DLQ.
//   - Redrive receives the DLQ, sends each letter of the queue back (a new message: new id,
//     receive count 0; FIFO letters keep their group) and deletes it from the DLQ. It returns how
//     many moved, also when it fails half-way.
//   - Depth and Counts read SQS's own approximate counts (GetQueueAttributes of the queue and of
//     the DLQ its RedrivePolicy names): Depth is every message the queue holds (waiting, in
//     flight, delayed), as the embedded queue's; Counts adds them by state and the DLQ's messages.
//     /metrics reports them on AWS (shared/api).
//   - Errors: an invalid or expired receipt matches queue.ErrStaleReceipt; throttling, 5xx and
//     connection errors are marked transient (Transient() true, which pipeline.IsTransient finds;
//     after the SDK's own retries); the rest are returned wrapped with the operation and queue name.
package sqs

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/usekarma/karma/shared/queue"
)

var (
	_ queue.Queue       = (*Queue)(nil)
	_ queue.DeadLetters = (*Queue)(nil)
)

// SQS limits.
const (
	MaxBatch       = 10         // entries per batch call and messages per receive
	MaxBatchBytes  = 256 * 1024 // bytes per SendMessageBatch (conservative: the default message size limit)
	MaxWait        = 20 * time.Second
	MaxVisibility  = 12 * time.Hour
	maxNameLength  = 80
	retention      = "1209600" // 14 days, SQS's maximum: every queue and DLQ, as terraform/queues.tf
	dlqSuffix      = "-dlq"
	fifoSuffix     = ".fifo"
	attrReason     = "karma-reason"
	attrQueue      = "karma-queue"
	attrMessageID  = "karma-message-id"
	attrReceives   = "karma-receive-count"
	attrDeadAt     = "karma-dead-at"
	attrSourceARN  = "DeadLetterQueueSourceArn"
	attrGroupID    = "MessageGroupId"
	attrReceiveCnt = "ApproximateReceiveCount"
	attrSentAt     = "SentTimestamp"
)

// Options configure a Queue; the zero value means the defaults.
type Options struct {
	// Prefix is put before every queue name, e.g. "karma-prod-".
	Prefix string
	// CreateMissing creates a queue and its DLQ (EnsureQueues with MaxReceives) the first time a
	// name is used and GetQueueUrl does not find it.
	CreateMissing bool
	// MaxReceives is the maxReceiveCount of queues CreateMissing creates (0 = queue.DefaultMaxReceives).
	MaxReceives int
	// ListWait is the long-poll wait of each receive of ListDead and Redrive; the last, empty,
	// receive takes this long (0 = 1 s; SQS rounds up to seconds). Long polling asks every SQS
	// server, so the listing is complete.
	ListWait time.Duration
	// ListVisibility hides the DLQ's messages while ListDead reads them (0 = 30 s); should the
	// process die before releasing them, they are listed again after it.
	ListVisibility time.Duration
	// SendRetry bounds the retries of failed batch entries (0 = 5 s).
	SendRetry time.Duration
}

// Queue is queue.Queue and queue.DeadLetters on SQS. Safe for concurrent use.
type Queue struct {
	client   *awssqs.Client
	opts     Options
	receipts *receipts

	mu     sync.Mutex
	queues map[string]*queueInfo // by full SQS name
}

type queueInfo struct {
	url  string
	fifo bool
	dlq  *dlqInfo // looked up on first need
}

type dlqInfo struct {
	url         string
	fifo        bool
	maxReceives int
}

// New returns a Queue on client.
func New(client *awssqs.Client, opts Options) *Queue {
	if opts.MaxReceives <= 0 {
		opts.MaxReceives = queue.DefaultMaxReceives
	}
	if opts.ListWait <= 0 {
		opts.ListWait = time.Second
	}
	if opts.ListVisibility <= 0 {
		opts.ListVisibility = 30 * time.Second
	}
	if opts.SendRetry <= 0 {
		opts.SendRetry = 5 * time.Second
	}
	return &Queue{client: client, opts: opts, receipts: newReceipts(), queues: map[string]*queueInfo{}}
}

// NewFromConfig loads the default AWS configuration (optFns adjust it, e.g. config.WithRegion)
// and returns a Queue. A non-empty endpoint overrides the SQS endpoint; when it is empty the SDK
// applies AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL and the shared config's endpoint_url itself.
func NewFromConfig(ctx context.Context, endpoint string, opts Options, optFns ...func(*config.LoadOptions) error) (*Queue, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("sqs: load AWS config: %w", err)
	}
	return New(awssqs.NewFromConfig(cfg, func(o *awssqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), opts), nil
}

// Client is the SDK client the Queue uses.
func (q *Queue) Client() *awssqs.Client { return q.client }

// QueueName is the SQS name of queue name (Prefix + name).
func (q *Queue) QueueName(name string) string { return q.opts.Prefix + name }

// DeadLetterQueueName is the SQS name EnsureQueues gives the DLQ of a queue with SQS name full.
func DeadLetterQueueName(full string) string {
	if base, ok := strings.CutSuffix(full, fifoSuffix); ok {
		return base + dlqSuffix + fifoSuffix
	}
	return full + dlqSuffix
}

func isFIFO(name string) bool { return strings.HasSuffix(name, fifoSuffix) }

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(math.Ceil(d.Seconds()))
}
