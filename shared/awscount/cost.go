package awscount

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Price is a list price: USD for every Per units of Unit, and where it was read.
type Price struct {
	USD    float64
	Per    float64
	Unit   string
	Source string
}

// Of is what quantity units cost.
func (p Price) Of(quantity float64) float64 {
	if p.Per == 0 {
		return 0
	}
	return quantity / p.Per * p.USD
}

func (p Price) String() string {
	switch {
	case p.Per == 0:
		return "not billed per " + p.Unit
	case p.USD == 0:
		return "free"
	}
	usd := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.10f", p.USD), "0"), ".")
	if p.Per == 1 {
		return fmt.Sprintf("$%s per %s", usd, p.Unit)
	}
	return fmt.Sprintf("$%s per %s %s", usd, commas(p.Per), p.Unit)
}

// Prices are the unit prices a Bill uses. docs/performance.md ("AWS: requests and cost") states
// each with its source and date.
type Prices struct {
	SQSRequests       Price // standard queues, each 64 KB chunk of a request
	LambdaRequests    Price
	LambdaGBSeconds   Price // arm64 (terraform/'s default architecture)
	DynamoDBWrites    Price // on-demand write request units
	DynamoDBReads     Price // on-demand read request units
	EventBridgeEvents Price // custom events put on a bus, each 64 KB chunk
	SSMInteractions   Price // API interactions (free at standard throughput)
	NeptuneInstance   Price // the instance terraform/ creates, per hour
	LogsIngestion     Price // CloudWatch Logs, standard class
	SecretsManager    Price // per secret and month
}

// USEast1 are us-east-1's list prices (docs/performance.md gives each one's source and date).
var USEast1 = Prices{
	SQSRequests:       Price{USD: 0.40, Per: 1e6, Unit: "requests", Source: "aws.amazon.com/sqs/pricing"},
	LambdaRequests:    Price{USD: 0.20, Per: 1e6, Unit: "requests", Source: "aws.amazon.com/lambda/pricing"},
	LambdaGBSeconds:   Price{USD: 0.0000133334, Per: 1, Unit: "GB-second (arm64)", Source: "aws.amazon.com/lambda/pricing"},
	DynamoDBWrites:    Price{USD: 0.625, Per: 1e6, Unit: "write request units", Source: "aws.amazon.com/dynamodb/pricing/on-demand"},
	DynamoDBReads:     Price{USD: 0.125, Per: 1e6, Unit: "read request units", Source: "aws.amazon.com/dynamodb/pricing/on-demand"},
	EventBridgeEvents: Price{USD: 1.00, Per: 1e6, Unit: "custom events", Source: "aws.amazon.com/eventbridge/pricing"},
	SSMInteractions:   Price{USD: 0, Per: 1e4, Unit: "API interactions (standard throughput)", Source: "aws.amazon.com/systems-manager/pricing"},
	NeptuneInstance:   Price{USD: 0.082, Per: 1, Unit: "instance-hour (db.t4g.medium, at db.t3.medium's price)", Source: "aws.amazon.com/neptune/pricing"},
	LogsIngestion:     Price{USD: 0.50, Per: 1, Unit: "GB ingested", Source: "aws.amazon.com/cloudwatch/pricing"},
	SecretsManager:    Price{USD: 0.40, Per: 1, Unit: "secret-month", Source: "aws.amazon.com/secrets-manager/pricing"},
}

// NeptuneServerless is the price of one Neptune capacity unit (NCU) for an hour: a serverless
// cluster's floor is 1 NCU.
var NeptuneServerless = Price{USD: 0.1608, Per: 1, Unit: "NCU-hour (serverless)", Source: "aws.amazon.com/neptune/pricing"}

// SSMHigherThroughput is the price of Parameter Store's API interactions once higher throughput
// is turned on (it applies to every interaction of the account and region, not only Karma's).
var SSMHigherThroughput = Price{USD: 0.05, Per: 1e4, Unit: "API interactions (higher throughput)", Source: "aws.amazon.com/systems-manager/pricing"}

// Memory is each function's memory in MB, as terraform/main.tf (local.sizes) sets it, with
// terraform_memory at its default (3008) for plan, apply and drift.
var Memory = map[string]float64{"ingest": 512, "resolve": 1024, "graph-write": 1024, "plan": 3008, "apply": 3008, "audit": 512,
	"reconcile": 512, "drift": 3008, "promote": 512, "webhook": 512, "api": 1024}

// Line is one item of a bill.
type Line struct {
	Service  string
	Item     string
	Quantity float64
	Price    Price
	USD      float64
}

// Bill is a list of items.
type Bill []Line

func (b *Bill) add(service, item string, quantity float64, p Price) {
	if quantity == 0 {
		return
	}
	*b = append(*b, Line{Service: service, Item: item, Quantity: quantity, Price: p, USD: p.Of(quantity)})
}

// Total is what the bill comes to.
func (b Bill) Total() float64 {
	var sum float64
	for _, l := range b {
		sum += l.USD
	}
	return sum
}

// Largest is the most expensive line (the first of equals).
func (b Bill) Largest() Line {
	var max Line
	for _, l := range b {
		if l.USD > max.USD {
			max = l
		}
	}
	return max
}

// Table is b as a Markdown table, with its total.
func (b Bill) Table() string {
	var s strings.Builder
	s.WriteString("| service | item | quantity | unit price | USD |\n|---|---|---:|---|---:|\n")
	for _, l := range b {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", l.Service, l.Item, quantity(l.Quantity), l.Price, dollars(l.USD))
	}
	fmt.Fprintf(&s, "| **total** | | | | **%s** |\n", dollars(b.Total()))
	return s.String()
}

// Usage is the bill of n runs that each made the requests of c (e.g. c per deployment, n
// deployments), at prices p, with memory the functions' memory in MB. platformLogBytes are the
// bytes Lambda itself logs per invocation (its START, END and REPORT lines), added to the
// functions' own (LogBytes). Neptune's Gremlin requests are listed without a price: Neptune
// bills instance-hours (IdleMonth) and storage I/Os, not requests.
func Usage(c Counts, n float64, memory map[string]float64, p Prices, platformLogBytes float64) Bill {
	var b Bill
	b.add(SQS, "requests (the functions', the event source mappings' and the rules' deliveries)", n*c.Service(SQS), p.SQSRequests)
	var invocations float64
	for _, k := range c.Keys() {
		if k.Service == Lambda && strings.HasPrefix(k.Operation, "Invoke ") {
			invocations += c[k]
		}
	}
	b.add(Lambda, "invocations", n*invocations, p.LambdaRequests)
	for _, k := range c.Keys() {
		if fn, ok := SecondsOf(k.Operation); ok && k.Service == Lambda {
			mb := memory[fn]
			b.add(Lambda, fmt.Sprintf("%s: %s s at %s MB", fn, commas(n*c[k]), Format(mb)), n*c[k]*mb/1024, p.LambdaGBSeconds)
		}
	}
	b.add(DynamoDB, ofIndexes("writes", n*c[Key{DynamoDB, IndexWriteUnits}]), n*c[Key{DynamoDB, WriteUnits}], p.DynamoDBWrites)
	b.add(DynamoDB, ofIndexes("reads", n*c[Key{DynamoDB, IndexReadUnits}]), n*c[Key{DynamoDB, ReadUnits}], p.DynamoDBReads)
	b.add(EventBridge, "events published", n*c[Key{EventBridge, PutEventsEntries}], p.EventBridgeEvents)
	b.add(SSM, "API interactions", n*c.Service(SSM), p.SSMInteractions)
	b.add(Neptune, "Gremlin requests (the instance-hours are the idle month's)", n*c.Service(Neptune), Price{Unit: "request"})
	logs := c[Key{Logs, LogBytes}] + invocations*platformLogBytes
	b.add(Logs, fmt.Sprintf("log data: %s bytes of the functions', %s of Lambda's own per invocation", commas(n*c[Key{Logs, LogBytes}]), Format(platformLogBytes)),
		n*logs/1e9, p.LogsIngestion)
	return b
}

// Idle describes a month in which nothing is deployed: what still runs and costs.
type Idle struct {
	Hours float64 // in the month (730 on average)
	// Mappings are the event source mappings (one per queue a function consumes); each keeps
	// Pollers long polls of PollSeconds open on its empty queue.
	Mappings, Pollers, PollSeconds float64
	// Scheduled are the scheduled functions' invocations in the month, by function, and
	// ScheduledSeconds how long one runs.
	Scheduled, ScheduledSeconds map[string]float64
	// ScheduledRequests are what one invocation of a scheduled function asks of AWS.
	ScheduledRequests map[string]Counts
	// NeptuneInstances run all month.
	NeptuneInstances float64
	// Secrets in Secrets Manager (the Git token, the webhook secrets).
	Secrets float64
	// PlatformLogBytes and FunctionLogBytes are logged per scheduled invocation.
	PlatformLogBytes, FunctionLogBytes float64
}

// IdleMonth is the bill of an idle month at prices p.
func IdleMonth(i Idle, memory map[string]float64, p Prices) Bill {
	var b Bill
	b.add(Neptune, "instance-hours", i.NeptuneInstances*i.Hours, p.NeptuneInstance)
	polls := i.Mappings * i.Pollers * i.Hours * 3600 / i.PollSeconds
	b.add(SQS, fmt.Sprintf("empty receives: %s mappings × %s long polls of %s s", Format(i.Mappings), Format(i.Pollers), Format(i.PollSeconds)), polls, p.SQSRequests)
	var invocations float64
	for _, fn := range slices.Sorted(maps.Keys(i.Scheduled)) {
		invocations += i.Scheduled[fn]
	}
	b.add(Lambda, "scheduled invocations", invocations, p.LambdaRequests)
	for _, fn := range slices.Sorted(maps.Keys(i.Scheduled)) {
		s := i.Scheduled[fn] * i.ScheduledSeconds[fn]
		b.add(Lambda, fmt.Sprintf("%s: %s × %s s at %s MB", fn, commas(i.Scheduled[fn]), Format(i.ScheduledSeconds[fn]), Format(memory[fn])), s*memory[fn]/1024, p.LambdaGBSeconds)
	}
	var reads, interactions float64
	for fn, c := range i.ScheduledRequests {
		reads += i.Scheduled[fn] * c[Key{DynamoDB, ReadUnits}]
		interactions += i.Scheduled[fn] * c.Service(SSM)
	}
	b.add(DynamoDB, "reads of the scheduled invocations", reads, p.DynamoDBReads)
	b.add(SSM, "API interactions of the scheduled invocations", interactions, p.SSMInteractions)
	b.add(Logs, "log data of the scheduled invocations", invocations*(i.PlatformLogBytes+i.FunctionLogBytes)/1e9, p.LogsIngestion)
	b.add("Secrets Manager", "secrets", i.Secrets, p.SecretsManager)
	return b
}

func ofIndexes(item string, indexes float64) string {
	if indexes == 0 {
		return item
	}
	return fmt.Sprintf("%s (%s of them by the indexes)", item, commas(indexes))
}

// quantity prints v with thousands separators, or three significant digits below 1.
func quantity(v float64) string {
	if v != 0 && v < 1 && v > -1 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return commas(v)
}

func dollars(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 0.01:
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// commas prints v with thousands separators (at most two decimals).
func commas(v float64) string {
	s := Format(v)
	whole, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	whole = strings.TrimPrefix(whole, "-")
	var out []byte
	for i := range len(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, whole[i])
	}
	r := string(out)
	if frac != "" {
		r += "." + frac
	}
	if neg {
		r = "-" + r
	}
	return r
}
