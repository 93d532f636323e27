package awscount

import (
	"context"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
)

// Instrument returns cfg counting into c: its APIOptions (copied, never shared with cfg's)
// gain c's middleware, so every client built from the result counts its requests.
func (c *Counter) Instrument(cfg aws.Config) aws.Config {
	cfg.APIOptions = append(append([]func(*middleware.Stack) error{}, cfg.APIOptions...), c.Middleware)
	return cfg
}

// Middleware adds the counting to an SDK client's stack (aws.Config.APIOptions).
//
// The count sits at the end of the finalize step, after the retry middleware: it runs once per
// attempt, and sees the deserialised output of that attempt.
func (c *Counter) Middleware(stack *middleware.Stack) error {
	if c.opts.Capacity {
		if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awscount.Capacity",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if awsmiddleware.GetServiceID(ctx) == DynamoDB {
					askCapacity(in.Parameters)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After); err != nil {
			return err
		}
	}
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("awscount.Attempt",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleFinalize(ctx, in)
			c.attempt(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), out.Result, err)
			return out, md, err
		}), middleware.After)
}

// attempt counts one attempt of service's operation, and what its output says it cost.
func (c *Counter) attempt(service, op string, result any, err error) {
	switch o := result.(type) {
	case *sqs.ReceiveMessageOutput:
		if err == nil && len(o.Messages) == 0 {
			op = EmptyReceive
		}
	case *eventbridge.PutEventsOutput:
		if err == nil {
			c.Add(service, PutEventsEntries, float64(len(o.Entries)))
		}
	}
	c.Add(service, op, 1)
	if c.opts.Capacity && service == DynamoDB && err == nil {
		units, indexes := consumed(result)
		total, ofIndexes := WriteUnits, IndexWriteUnits
		if reads[op] {
			total, ofIndexes = ReadUnits, IndexReadUnits
		}
		if units > 0 {
			c.Add(service, total, units)
		}
		if indexes > 0 {
			c.Add(service, ofIndexes, indexes)
		}
	}
}

// askCapacity sets ReturnConsumedCapacity = INDEXES (the total, and the share of the table and
// of each index) on a DynamoDB input that has the field.
func askCapacity(params any) {
	v := reflect.ValueOf(params)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	f := v.Elem().FieldByName("ReturnConsumedCapacity")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[ddbtypes.ReturnConsumedCapacity]() && f.String() == "" {
		f.SetString(string(ddbtypes.ReturnConsumedCapacityIndexes))
	}
}

// reads are the DynamoDB operations whose capacity is read capacity; every other operation
// that reports capacity writes.
var reads = map[string]bool{"GetItem": true, "BatchGetItem": true, "Query": true, "Scan": true, "TransactGetItems": true, "ExecuteStatement": true}

// consumed is the capacity a DynamoDB output reports (ConsumedCapacity, one or a list): the
// units in all, and those of global secondary indexes among them.
func consumed(result any) (units, indexes float64) {
	v := reflect.ValueOf(result)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, 0
	}
	var ccs []ddbtypes.ConsumedCapacity
	switch f := v.Elem().FieldByName("ConsumedCapacity"); {
	case !f.IsValid():
	case f.Type() == reflect.TypeFor[*ddbtypes.ConsumedCapacity]():
		if cc, _ := f.Interface().(*ddbtypes.ConsumedCapacity); cc != nil {
			ccs = append(ccs, *cc)
		}
	case f.Type() == reflect.TypeFor[[]ddbtypes.ConsumedCapacity]():
		ccs = f.Interface().([]ddbtypes.ConsumedCapacity)
	}
	for _, cc := range ccs {
		if cc.CapacityUnits != nil {
			units += *cc.CapacityUnits
		}
		for _, gsi := range cc.GlobalSecondaryIndexes {
			if gsi.CapacityUnits != nil {
				indexes += *gsi.CapacityUnits
			}
		}
	}
	return units, indexes
}
