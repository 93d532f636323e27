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
//   - Errors: an invalid or expired receipt matches queue.ErrStaleReceipt; throttling, 5xx and
//     connection errors are marked transient (Transient() true, which pipeline.IsTransient finds;
//     after the SDK's own retries); the rest are returned wrapped with the operation and queue name.
package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cenkalti/backoff/v4"

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
	dlqRetention   = "1209600" // 14 days, SQS's maximum
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

// --- names -> URLs ---

// resolve returns queue name's URL, creating it first if allowed.
func (q *Queue) resolve(ctx context.Context, name string) (*queueInfo, error) {
	if name == "" {
		return nil, errors.New("sqs: empty queue name")
	}
	qi, err := q.lookup(ctx, q.QueueName(name), "")
	if err != nil && isNotFound(err) && q.opts.CreateMissing {
		return q.ensure(ctx, name, q.opts.MaxReceives)
	}
	if err != nil {
		return nil, wrap("get queue url", q.QueueName(name), err)
	}
	return qi, nil
}

// lookup finds the URL of the queue with SQS name full (owned by account, "" = the caller's).
func (q *Queue) lookup(ctx context.Context, full, account string) (*queueInfo, error) {
	q.mu.Lock()
	qi := q.queues[full]
	q.mu.Unlock()
	if qi != nil {
		return qi, nil
	}
	in := &awssqs.GetQueueUrlInput{QueueName: aws.String(full)}
	if account != "" {
		in.QueueOwnerAWSAccountId = aws.String(account)
	}
	out, err := q.client.GetQueueUrl(ctx, in)
	if err != nil {
		return nil, err
	}
	return q.remember(full, aws.ToString(out.QueueUrl)), nil
}

func (q *Queue) remember(full, url string) *queueInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qi := q.queues[full]; qi != nil && qi.url == url {
		return qi
	}
	qi := &queueInfo{url: url, fifo: isFIFO(full)}
	q.queues[full] = qi
	return qi
}

// deadLetterQueue returns the DLQ of the queue with SQS name full, from its RedrivePolicy.
func (q *Queue) deadLetterQueue(ctx context.Context, full string, qi *queueInfo) (*dlqInfo, error) {
	q.mu.Lock()
	dl := qi.dlq
	q.mu.Unlock()
	if dl != nil {
		return dl, nil
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(qi.url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		return nil, wrap("get redrive policy", full, err)
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return nil, fmt.Errorf("sqs: queue %s has no dead-letter queue (no RedrivePolicy)", full)
	}
	var policy struct {
		Target string `json:"deadLetterTargetArn"`
		Max    any    `json:"maxReceiveCount"` // a number, or a string holding one
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return nil, fmt.Errorf("sqs: queue %s: RedrivePolicy %q: %w", full, raw, err)
	}
	target, err := arn.Parse(policy.Target)
	if err != nil {
		return nil, fmt.Errorf("sqs: queue %s: RedrivePolicy target %q: %w", full, policy.Target, err)
	}
	dq, err := q.lookup(ctx, target.Resource, target.AccountID)
	if err != nil {
		return nil, wrap("get queue url", target.Resource, err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(fmt.Sprint(policy.Max)))
	dl = &dlqInfo{url: dq.url, fifo: dq.fifo, maxReceives: max}
	q.mu.Lock()
	qi.dlq = dl
	q.mu.Unlock()
	return dl, nil
}

// --- creation ---

// EnsureQueues creates each named queue (Prefix+name) with its dead-letter queue, and points
// the queue's RedrivePolicy at it with maxReceives (0 = queue.DefaultMaxReceives). Existing
// queues are kept (their RedrivePolicy is set). The Terraform equivalent, per queue:
//
//	DLQ:   name = Prefix+name+"-dlq" (".fifo" last), message_retention_seconds = 1209600,
//	       fifo_queue and content_based_deduplication = true for FIFO queues
//	queue: name = Prefix+name, redrive_policy = {deadLetterTargetArn = DLQ arn,
//	       maxReceiveCount = maxReceives}, visibility_timeout_seconds >= the Lambda function's
//	       timeout, fifo_queue and content_based_deduplication = true for FIFO queues
//
// plus, for queues fed by EventBridge, a queue policy allowing events.amazonaws.com to
// sqs:SendMessage with aws:SourceArn = the rule's ARN.
func (q *Queue) EnsureQueues(ctx context.Context, names []string, maxReceives int) error {
	for _, name := range names {
		if _, err := q.ensure(ctx, name, maxReceives); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) ensure(ctx context.Context, name string, maxReceives int) (*queueInfo, error) {
	if maxReceives <= 0 {
		maxReceives = queue.DefaultMaxReceives
	}
	full := q.QueueName(name)
	dlqName := DeadLetterQueueName(full)
	if len(dlqName) > maxNameLength {
		return nil, fmt.Errorf("sqs: queue name %q is too long for SQS with its DLQ %q (%d characters at most)", full, dlqName, maxNameLength)
	}
	fifo := isFIFO(full)
	attrs := func(extra map[string]string) map[string]string {
		if fifo {
			extra[string(types.QueueAttributeNameFifoQueue)] = "true"
			extra[string(types.QueueAttributeNameContentBasedDeduplication)] = "true"
		}
		return extra
	}
	dlqURL, err := q.create(ctx, dlqName, attrs(map[string]string{string(types.QueueAttributeNameMessageRetentionPeriod): dlqRetention}))
	if err != nil {
		return nil, err
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlqURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return nil, wrap("get queue arn", dlqName, err)
	}
	policy, _ := json.Marshal(map[string]any{
		"deadLetterTargetArn": out.Attributes[string(types.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     maxReceives,
	})
	redrive := map[string]string{string(types.QueueAttributeNameRedrivePolicy): string(policy)}
	url, err := q.create(ctx, full, attrs(redrive))
	if err != nil {
		return nil, err
	}
	// A queue that existed with other attributes was only looked up: set its redrive policy.
	if _, err := q.client.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: redrive}); err != nil {
		return nil, wrap("set redrive policy", full, err)
	}
	q.mu.Lock()
	delete(q.queues, full) // its DLQ may have changed
	q.mu.Unlock()
	return q.remember(full, url), nil
}

// create creates a queue, or finds it when it exists with other attributes.
func (q *Queue) create(ctx context.Context, full string, attrs map[string]string) (string, error) {
	out, err := q.client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(full), Attributes: attrs})
	if err == nil {
		return aws.ToString(out.QueueUrl), nil
	}
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) {
		return "", wrap("create queue", full, err)
	}
	got, err := q.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(full)})
	if err != nil {
		return "", wrap("get queue url", full, err)
	}
	return aws.ToString(got.QueueUrl), nil
}

// --- queue.Queue ---

// Send sends msgs with SendMessageBatch, 10 (and at most 256 KiB) per call.
func (q *Queue) Send(ctx context.Context, name string, msgs ...queue.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		if len(m.Body) == 0 {
			return fmt.Errorf("sqs send %s: message %d has an empty body", name, i)
		}
		e := types.SendMessageBatchRequestEntry{MessageBody: aws.String(string(m.Body))}
		if qi.fifo {
			if m.GroupID == "" {
				return fmt.Errorf("sqs send %s: message %d has no GroupID (FIFO queue)", name, i)
			}
			e.MessageGroupId = aws.String(m.GroupID)
			if m.DedupID != "" {
				e.MessageDeduplicationId = aws.String(m.DedupID)
			}
		}
		entries[i] = e
	}
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && n < MaxBatch {
			s := len(aws.ToString(entries[n].MessageBody))
			if n > 0 && size+s > MaxBatchBytes {
				break
			}
			n, size = n+1, size+s
		}
		if err := q.sendBatch(ctx, name, qi, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// sendBatch sends one batch, retrying the entries that failed through no fault of the sender.
func (q *Queue) sendBatch(ctx context.Context, name string, qi *queueInfo, batch []types.SendMessageBatchRequestEntry) error {
	pending := make([]types.SendMessageBatchRequestEntry, len(batch))
	for i, e := range batch {
		e.Id = aws.String(strconv.Itoa(i))
		pending[i] = e
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxElapsedTime = q.opts.SendRetry
	return backoff.Retry(func() error {
		out, err := q.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(qi.url), Entries: pending})
		if err != nil {
			err = wrap("send", name, err)
			if isMarkedTransient(err) {
				return err
			}
			return backoff.Permanent(err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		byID := map[string]types.SendMessageBatchRequestEntry{}
		for _, e := range pending {
			byID[aws.ToString(e.Id)] = e
		}
		var retry []types.SendMessageBatchRequestEntry
		var problems []string
		permanent := false
		for _, f := range out.Failed {
			problems = append(problems, fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
			if f.SenderFault {
				permanent = true
			} else if e, ok := byID[aws.ToString(f.Id)]; ok {
				retry = append(retry, e)
			}
		}
		err = fmt.Errorf("sqs send %s: %d of %d messages failed: %s", name, len(out.Failed), len(pending), strings.Join(problems, "; "))
		if permanent {
			return backoff.Permanent(err)
		}
		pending = retry
		return transient(err)
	}, backoff.WithContext(b, ctx))
}

// Receive long-polls for up to max (1..10) messages.
func (q *Queue) Receive(ctx context.Context, name string, max int, visibility, wait time.Duration) ([]queue.Delivery, error) {
	switch {
	case max < 1 || max > MaxBatch:
		return nil, fmt.Errorf("sqs receive %s: max %d not in 1..%d", name, max, MaxBatch)
	case visibility < 0 || visibility > MaxVisibility:
		return nil, fmt.Errorf("sqs receive %s: visibility %v not in 0..%v", name, visibility, MaxVisibility)
	case wait < 0:
		return nil, fmt.Errorf("sqs receive %s: negative wait %v", name, wait)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	vis := seconds(visibility)
	out, err := q.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:            aws.String(qi.url),
		MaxNumberOfMessages: int32(max),
		VisibilityTimeout:   vis,
		WaitTimeSeconds:     min(seconds(wait), seconds(MaxWait)),
		// The successor of the deprecated AttributeNames (moto and SQS take both).
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameMessageGroupId,
		},
	})
	if err != nil {
		return nil, wrap("receive", name, err)
	}
	deadline := time.Now().Add(time.Duration(vis) * time.Second)
	ds := make([]queue.Delivery, 0, len(out.Messages))
	for _, m := range out.Messages {
		d := toDelivery(m)
		q.receipts.received(name, d, m.Attributes[attrGroupID], deadline)
		ds = append(ds, d)
	}
	return ds, nil
}

func toDelivery(m types.Message) queue.Delivery {
	count, _ := strconv.Atoi(m.Attributes[attrReceiveCnt])
	return queue.Delivery{
		MessageID:     aws.ToString(m.MessageId),
		Body:          []byte(aws.ToString(m.Body)),
		ReceiptHandle: aws.ToString(m.ReceiptHandle),
		ReceiveCount:  count,
		SentAt:        millis(m.Attributes[attrSentAt]),
	}
}

func millis(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Delete acknowledges a delivery.
func (q *Queue) Delete(ctx context.Context, name, receipt string) error {
	if _, err := q.receipts.check(name, receipt); err != nil {
		return fmt.Errorf("sqs delete %s: %w", name, err)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	if _, err := q.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt)}); err != nil {
		return wrap("delete", name, err)
	}
	q.receipts.use(receipt)
	return nil
}

// ChangeVisibility hides a delivery for visibility (rounded up to seconds) from now; 0
// releases it.
func (q *Queue) ChangeVisibility(ctx context.Context, name, receipt string, visibility time.Duration) error {
	if visibility < 0 || visibility > MaxVisibility {
		return fmt.Errorf("sqs change visibility %s: %v not in 0..%v", name, visibility, MaxVisibility)
	}
	if _, err := q.receipts.check(name, receipt); err != nil {
		return fmt.Errorf("sqs change visibility %s: %w", name, err)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	vis := seconds(visibility)
	_, err = q.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt), VisibilityTimeout: vis})
	switch {
	case err != nil && isNotInflight(err) && vis == 0:
		// Its visibility ran out: it is visible already.
	case err != nil && isNotInflight(err):
		return fmt.Errorf("sqs change visibility %s: the message is visible again and may be received by anyone: %w: %w",
			name, queue.ErrStaleReceipt, err)
	case err != nil:
		return wrap("change visibility", name, err)
	}
	q.receipts.extend(receipt, time.Now().Add(time.Duration(vis)*time.Second))
	return nil
}

// Kill moves a delivery received through this Queue to its DLQ at once, with reason.
func (q *Queue) Kill(ctx context.Context, name, receipt, reason string) error {
	d, err := q.receipts.check(name, receipt)
	if err != nil {
		return fmt.Errorf("sqs kill %s: %w", name, err)
	}
	if d == nil {
		return fmt.Errorf("sqs kill %s: receipt %.20s... was not received through this Queue (SQS cannot read a message by receipt; use DeadLetter with the body)", name, receipt)
	}
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	dl, err := q.deadLetterQueue(ctx, q.QueueName(name), qi)
	if err != nil {
		return err
	}
	// Validates the receipt, and keeps the message hidden while it is copied.
	if _, err := q.client.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt), VisibilityTimeout: 60}); err != nil && !isNotInflight(err) {
		return wrap("kill", name, err)
	}
	letter := queue.DeadLetter{MessageID: d.messageID, Queue: name, Body: d.body, Reason: reason,
		ReceiveCount: d.receiveCount, DeadAt: time.Now().UTC()}
	if err := q.sendDead(ctx, dl, letter, d.groupID); err != nil {
		return err
	}
	if _, err := q.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(qi.url), ReceiptHandle: aws.String(receipt)}); err != nil {
		return wrap("kill (delete the original)", name, err)
	}
	q.receipts.use(receipt)
	return nil
}

// DeadLetter sends a message received from the queue whose ARN is sourceARN (e.g. by Lambda's
// event source mapping) to that queue's DLQ, with letter's reason, queue, message id and receive
// count as attributes. groupID is the message's group on FIFO queues. The caller deletes the
// original (Lambda does so when the record is reported as handled).
func (q *Queue) DeadLetter(ctx context.Context, sourceARN string, letter queue.DeadLetter, groupID string) error {
	a, err := arn.Parse(sourceARN)
	if err != nil || a.Service != "sqs" {
		return fmt.Errorf("sqs dead letter: %q is not an SQS queue ARN", sourceARN)
	}
	qi, err := q.lookup(ctx, a.Resource, a.AccountID)
	if err != nil {
		return wrap("get queue url", a.Resource, err)
	}
	dl, err := q.deadLetterQueue(ctx, a.Resource, qi)
	if err != nil {
		return err
	}
	if letter.Queue == "" {
		letter.Queue = strings.TrimPrefix(a.Resource, q.opts.Prefix)
	}
	if letter.DeadAt.IsZero() {
		letter.DeadAt = time.Now().UTC()
	}
	return q.sendDead(ctx, dl, letter, groupID)
}

func (q *Queue) sendDead(ctx context.Context, dl *dlqInfo, l queue.DeadLetter, groupID string) error {
	str := func(s string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
	}
	attrs := map[string]types.MessageAttributeValue{
		attrQueue:     str(l.Queue),
		attrMessageID: str(l.MessageID),
		attrReceives:  {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(l.ReceiveCount))},
		attrDeadAt:    str(l.DeadAt.UTC().Format(time.RFC3339Nano)),
	}
	if l.Reason != "" { // SQS refuses empty attribute values
		attrs[attrReason] = str(l.Reason)
	}
	in := &awssqs.SendMessageInput{QueueUrl: aws.String(dl.url), MessageBody: aws.String(string(l.Body)), MessageAttributes: attrs}
	if dl.fifo {
		if groupID == "" {
			groupID = "dead"
		}
		in.MessageGroupId = aws.String(groupID)
		in.MessageDeduplicationId = aws.String(fmt.Sprintf("dead-%s-%d", l.MessageID, l.DeadAt.UnixNano()))
	}
	if _, err := q.client.SendMessage(ctx, in); err != nil {
		return wrap("send to dead-letter queue of", l.Queue, err)
	}
	return nil
}

// --- queue.DeadLetters ---

// ListDead returns the dead letters of queue name, oldest first.
func (q *Queue) ListDead(ctx context.Context, name string) ([]queue.DeadLetter, error) {
	var out []queue.DeadLetter
	err := q.scanDead(ctx, name, func(batch []deadMessage) (release []deadMessage, err error) {
		for _, m := range batch {
			if m.mine {
				out = append(out, m.letter)
			}
		}
		return batch, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b queue.DeadLetter) int { return a.DeadAt.Compare(b.DeadAt) })
	if out == nil {
		out = []queue.DeadLetter{}
	}
	return out, nil
}

// Redrive moves every dead letter of queue name back to it; returns how many moved.
func (q *Queue) Redrive(ctx context.Context, name string) (int, error) {
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return 0, err
	}
	n := 0
	err = q.scanDead(ctx, name, func(batch []deadMessage) ([]deadMessage, error) {
		slices.SortStableFunc(batch, func(a, b deadMessage) int { return a.letter.DeadAt.Compare(b.letter.DeadAt) })
		var keep []deadMessage
		for i, m := range batch {
			if !m.mine {
				keep = append(keep, m)
				continue
			}
			in := &awssqs.SendMessageInput{QueueUrl: aws.String(qi.url), MessageBody: aws.String(string(m.letter.Body))}
			if qi.fifo {
				group := m.groupID
				if group == "" {
					group = "redriven"
				}
				in.MessageGroupId = aws.String(group)
				in.MessageDeduplicationId = aws.String("redrive-" + m.dlqMessageID)
			}
			if _, err := q.client.SendMessage(ctx, in); err != nil {
				return append(keep, batch[i:]...), wrap("redrive to", name, err)
			}
			if _, err := q.client.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(m.dlqURL), ReceiptHandle: aws.String(m.receipt)}); err != nil {
				return append(keep, batch[i+1:]...), wrap("redrive (delete from the dead-letter queue) of", name, err)
			}
			n++
		}
		return keep, nil
	})
	return n, err
}

// deadMessage is one message received from a DLQ.
type deadMessage struct {
	letter       queue.DeadLetter
	mine         bool // a letter of the queue asked for
	groupID      string
	dlqMessageID string
	dlqURL       string
	receipt      string
}

// scanDead receives the whole DLQ of queue name in batches, hiding what it received, and hands
// each batch to fn; the messages fn returns (and, on an error, all of the batch that fn did not
// return) are released again at the end.
func (q *Queue) scanDead(ctx context.Context, name string, fn func([]deadMessage) ([]deadMessage, error)) (err error) {
	qi, err := q.resolve(ctx, name)
	if err != nil {
		return err
	}
	full := q.QueueName(name)
	dl, err := q.deadLetterQueue(ctx, full, qi)
	if err != nil {
		return err
	}
	var held []deadMessage
	defer func() {
		if rerr := q.release(context.WithoutCancel(ctx), name, dl, held); err == nil {
			err = rerr
		}
	}()
	for {
		out, err := q.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(dl.url),
			MaxNumberOfMessages:         MaxBatch,
			VisibilityTimeout:           seconds(q.opts.ListVisibility),
			WaitTimeSeconds:             min(seconds(q.opts.ListWait), seconds(MaxWait)),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			return wrap("list dead letters of", name, err)
		}
		if len(out.Messages) == 0 {
			return nil
		}
		batch := make([]deadMessage, len(out.Messages))
		for i, m := range out.Messages {
			batch[i] = q.deadMessage(name, full, dl, m)
		}
		keep, err := fn(batch)
		held = append(held, keep...)
		if err != nil {
			return err
		}
	}
}

func (q *Queue) deadMessage(name, full string, dl *dlqInfo, m types.Message) deadMessage {
	attr := func(k string) (string, bool) {
		v, ok := m.MessageAttributes[k]
		return aws.ToString(v.StringValue), ok && v.StringValue != nil
	}
	d := deadMessage{mine: true, groupID: m.Attributes[attrGroupID], dlqMessageID: aws.ToString(m.MessageId),
		dlqURL: dl.url, receipt: aws.ToString(m.ReceiptHandle)}
	l := queue.DeadLetter{MessageID: d.dlqMessageID, Queue: name, Body: []byte(aws.ToString(m.Body)),
		Reason: fmt.Sprintf("max receives (%d) exceeded", dl.maxReceives), DeadAt: millis(m.Attributes[attrSentAt])}
	l.ReceiveCount, _ = strconv.Atoi(m.Attributes[attrReceiveCnt])
	if src, ok := attr(attrQueue); ok {
		d.mine = src == name
		if v, ok := attr(attrMessageID); ok {
			l.MessageID = v
		}
		l.Reason, _ = attr(attrReason)
		if v, ok := attr(attrReceives); ok {
			l.ReceiveCount, _ = strconv.Atoi(v)
		}
		if v, ok := attr(attrDeadAt); ok {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				l.DeadAt = t
			}
		}
	} else if src := m.Attributes[attrSourceARN]; src != "" {
		a, err := arn.Parse(src)
		d.mine = err == nil && a.Resource == full
	}
	d.letter = l
	return d
}

// release makes held DLQ messages visible again.
func (q *Queue) release(ctx context.Context, name string, dl *dlqInfo, held []deadMessage) error {
	var errs []error
	for chunk := range slices.Chunk(held, MaxBatch) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.receipt)}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(dl.url), Entries: entries})
		if err != nil {
			errs = append(errs, wrap("release dead letters of", name, err))
		} else if len(out.Failed) > 0 {
			errs = append(errs, fmt.Errorf("sqs release dead letters of %s: %d failed (%s); they come back after %v",
				name, len(out.Failed), aws.ToString(out.Failed[0].Code), q.opts.ListVisibility))
		}
	}
	return errors.Join(errs...)
}
