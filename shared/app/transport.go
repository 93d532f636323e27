package app

import (
	"context"

	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/sqs"
)

// Queue is the queue stages receive from: the embedded queue, or SQS queues named
// <queue prefix><stage> (each with its dead-letter queue).
func (a *App) Queue(ctx context.Context) (queue.Queue, error) {
	return once(a, "queue", func() (queue.Queue, error) {
		var q queue.Queue
		if a.Config.Queue == config.AWS {
			cfg, err := a.awsConfig(ctx)
			if err != nil {
				return nil, err
			}
			q = sqs.New(awssqs.NewFromConfig(cfg), sqs.Options{Prefix: a.Config.QueuePrefix})
		} else {
			db, err := a.DB()
			if err != nil {
				return nil, err
			}
			eq, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
			if err != nil {
				return nil, err
			}
			q = eq
		}
		if a.opts.Transport != nil {
			q = a.opts.Transport(q)
		}
		return q, nil
	})
}

// EmbeddedQueue is the embedded queue itself (depth, dead letters, leases), or nil when the
// queue is on AWS.
func (a *App) EmbeddedQueue(ctx context.Context) (*embedded.Queue, error) {
	if a.Config.Queue == config.AWS {
		return nil, nil
	}
	q, err := a.Queue(ctx)
	if err != nil {
		return nil, err
	}
	if eq, ok := q.(*embedded.Queue); ok {
		return eq, nil
	}
	db, err := a.DB()
	if err != nil {
		return nil, err
	}
	return embedded.NewQueue(ctx, db, embedded.QueueOptions{}) // under a test transport
}

// Publisher sends messages to the stages that consume them (pipeline.Routes) and to audit: the
// queue itself, or, on AWS with an event bus, EventBridge (whose rules feed the queues).
func (a *App) Publisher(ctx context.Context) (pipeline.Publisher, error) {
	return once(a, "publisher", func() (pipeline.Publisher, error) {
		if a.Config.Queue == config.AWS && a.Config.EventBus != "" {
			cfg, err := a.awsConfig(ctx)
			if err != nil {
				return nil, err
			}
			return eventbridge.NewPublisher(awseb.NewFromConfig(cfg), a.Config.EventBus, eventbridge.PublisherOptions{}), nil
		}
		q, err := a.Queue(ctx)
		if err != nil {
			return nil, err
		}
		return pipeline.QueuePublisher{Queue: q}, nil
	})
}

// Publish sends root messages (a change, an approval) into the pipeline.
func (a *App) Publish(ctx context.Context, msgs ...message.Envelope) error {
	pub, err := a.Publisher(ctx)
	if err != nil {
		return err
	}
	return pub.Publish(ctx, msgs...)
}
