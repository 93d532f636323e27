package neptune

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigningService is the SigV4 service name of Neptune's data plane.
const SigningService = "neptune-db"

// emptyPayloadHash is the hex SHA-256 of an empty body: the handshake GET has none.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// SignHandshake signs the websocket handshake request (GET https://<endpoint>:8182/gremlin) for
// Neptune IAM authentication: SigV4, service neptune-db, the given region and time. It sets the
// headers the handshake must carry: Host, X-Amz-Date, Authorization, and X-Amz-Security-Token
// when the credentials have a session token. Pure: the same inputs give the same headers.
func SignHandshake(req *http.Request, creds aws.Credentials, region string, now time.Time) error {
	if req == nil || req.URL == nil {
		return errors.New("neptune: sign handshake: no request")
	}
	if region == "" {
		return errors.New("neptune: sign handshake: no region")
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("neptune: sign handshake: no credentials")
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Del("Host") // set below from what was signed
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, emptyPayloadHash, SigningService, region, now); err != nil {
		return err
	}
	// The signer signs the host from req.Host (or the URL), without adding a header; the
	// websocket dialer sends this header's value as the request's Host, so what is signed is
	// what is sent.
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	req.Header.Set("Host", host)
	return nil
}
