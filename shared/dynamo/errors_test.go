package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/pipeline"
)

// No server needed: a closed port gives connection errors, which are transient.
func TestConnectionRefusedIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	client := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), RetryMaxAttempts: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = dynamo.NewChangeSets(client, "t", dynamo.ChangeSetOptions{}).Get(ctx, "x")
	var e *dynamo.Error
	if !errors.As(err, &e) || !pipeline.IsTransient(err) || errors.Is(err, changeset.ErrNotFound) {
		t.Fatalf("Get with the server down = %v; want a transient *dynamo.Error", err)
	}
	t.Log(err)
	_, err = dynamo.NewSeen(client, "t", dynamo.SeenOptions{}).Claim(ctx, "k", time.Second)
	if !pipeline.IsTransient(err) {
		t.Errorf("Claim with the server down = %v; want transient", err)
	}
}

func TestIsTransient(t *testing.T) {
	code := func(c string) error { return &smithy.GenericAPIError{Code: c, Message: "m"} }
	cancelled := func(reasons ...string) error {
		var rs []types.CancellationReason
		for _, r := range reasons {
			rs = append(rs, types.CancellationReason{Code: aws.String(r)})
		}
		return &types.TransactionCanceledException{Message: aws.String("cancelled"), CancellationReasons: rs}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}, true},
		{code("ThrottlingException"), true},
		{code("RequestLimitExceeded"), true},
		{code("InternalServerError"), true},
		{code("ServiceUnavailable"), true},
		{&types.InternalServerError{Message: aws.String("oops")}, true},
		{cancelled("None", "TransactionConflict"), true},
		{cancelled("ThrottlingError"), true},
		{cancelled("ConditionalCheckFailed", "None"), false},
		{&types.ConditionalCheckFailedException{Message: aws.String("no")}, false},
		{&types.ResourceNotFoundException{Message: aws.String("no table")}, false},
		{code("ValidationException"), false},
		{context.Canceled, false},
		{fmt.Errorf("op: %w", context.DeadlineExceeded), true},
	} {
		if got := dynamo.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%T %v) = %v, want %v", tc.err, tc.err, got, tc.want)
		}
	}
}
