package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// Metrics are served at /metrics in Prometheus' text format (the Prometheus Go client):
//
//	karma_queue_depth{queue}                      messages a stage's queue holds: waiting or in flight
//	                                              (read at scrape)
//	karma_queue_in_flight{queue}                  of which received and not yet deleted (queues that
//	                                              count by state: SQS)
//	karma_dead_letters{queue}                     messages in a stage's dead-letter queue (read at scrape)
//	karma_stage_duration_seconds{stage,action}    how long a stage's handler took, by what the runtime did
//	                                              with the message (ack, retry, dead-letter, duplicate)
//	karma_deployments_total{outcome}              deployments announced: applied, failed, skipped
//	karma_api_request_duration_seconds{route,code} the API's requests
//
// plus the Go runtime's and the process's. The stage metrics come from the middleware
// (Metrics.Middleware) wrapped around each stage in the same process: `karma serve` has them;
// the API Lambda function does not (CloudWatch has the stage functions').

// QueueStats reads the queues (the embedded queue; on AWS, SQS).
type QueueStats interface {
	Depth(ctx context.Context, queue string) (int, error)
	ListDead(ctx context.Context, queue string) ([]queue.DeadLetter, error)
}

// QueueCounter is a queue that counts its messages by state and its dead letters itself (SQS:
// GetQueueAttributes, two requests per queue): when the QueueStats is one, a scrape reads
// Counts instead of Depth and ListDead (which on SQS would receive the whole dead-letter queue).
type QueueCounter interface {
	Counts(ctx context.Context, queue string) (queue.Counts, error)
}

// Metrics is the registry /metrics serves.
type Metrics struct {
	reg         *prometheus.Registry
	stage       *prometheus.HistogramVec
	deployments *prometheus.CounterVec
	requests    *prometheus.HistogramVec
}

// NewMetrics registers the metrics; queues, when not nil, are read at each scrape for the
// depth and dead letters of the given queues (the stage names).
func NewMetrics(queues QueueStats, names []string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "karma_stage_duration_seconds",
		Help: "How long a stage's handler took with one message, by what the runtime did with it.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
		[]string{"stage", "action"})
	m.deployments = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "karma_deployments_total",
		Help: "Deployments announced by outcome (applied, failed, skipped); a redelivered message announces again."}, []string{"outcome"})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "karma_api_request_duration_seconds",
		Help: "The API's requests by route and status code.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"route", "code"})
	m.reg.MustRegister(m.stage, m.deployments, m.requests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if queues != nil {
		m.reg.MustRegister(&queueCollector{q: queues, names: names})
	}
	return m
}

// Middleware times a stage's handler and counts the deployments it announces.
func (m *Metrics) Middleware(stage string) pipeline.Middleware {
	return func(next pipeline.Handler) pipeline.Handler {
		return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			start := time.Now()
			out, err := next(ctx, in)
			m.stage.WithLabelValues(stage, pipeline.Classify(err).String()).Observe(time.Since(start).Seconds())
			if err == nil {
				for _, o := range out {
					if outcome, ok := outcomes[o.Type]; ok {
						m.deployments.WithLabelValues(outcome).Inc()
					}
				}
			}
			return out, err
		}
	}
}

var outcomes = map[string]string{
	message.TypeDeploymentApplied: "applied",
	message.TypeDeploymentFailed:  "failed",
	message.TypeDeploymentSkipped: "skipped",
}

func (m *Metrics) observeRequest(route string, code int, d time.Duration) {
	if m != nil {
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
	}
}

func (s *server) metrics() http.Handler {
	if s.cfg.Metrics == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, notFound("this server keeps no metrics"))
		})
	}
	return s.cfg.Metrics.Handler()
}

// Handler serves the metrics in Prometheus' text format, without authentication (the API's
// GET /metrics wraps it in its own).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// queueCollector reads the queues at each scrape.
type queueCollector struct {
	q     QueueStats
	names []string
}

var (
	depthDesc    = prometheus.NewDesc("karma_queue_depth", "Messages a stage's queue holds, waiting or in flight.", []string{"queue"}, nil)
	inFlightDesc = prometheus.NewDesc("karma_queue_in_flight", "Messages of a stage's queue received and not yet deleted.", []string{"queue"}, nil)
	deadDesc     = prometheus.NewDesc("karma_dead_letters", "Messages in a stage's dead-letter queue.", []string{"queue"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- deadDesc
	if _, ok := c.q.(QueueCounter); ok {
		ch <- inFlightDesc
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if qc, ok := c.q.(QueueCounter); ok {
		for _, name := range c.names {
			n, err := qc.Counts(ctx, name)
			if err != nil {
				for _, d := range []*prometheus.Desc{depthDesc, inFlightDesc, deadDesc} {
					ch <- prometheus.NewInvalidMetric(d, err)
				}
				continue
			}
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n.Held()), name)
			ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(n.InFlight), name)
			ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(n.Dead), name)
		}
		return
	}
	for _, name := range c.names {
		if n, err := c.q.Depth(ctx, name); err != nil {
			ch <- prometheus.NewInvalidMetric(depthDesc, err)
		} else {
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), name)
		}
		if dead, err := c.q.ListDead(ctx, name); err != nil {
			ch <- prometheus.NewInvalidMetric(deadDesc, err)
		} else {
			ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(len(dead)), name)
		}
	}
}
