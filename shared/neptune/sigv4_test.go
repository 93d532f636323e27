package neptune

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// expectedAuthorization computes the SigV4 Authorization header of a GET with no body and no
// query by the documented algorithm (canonical request, string to sign, derived key), without
// the SDK signer.
func expectedAuthorization(host, path string, headers map[string]string, creds aws.Credentials, region string, now time.Time) string {
	return expectedAuthorizationFor("neptune-db", path, headers, creds, region, now)
}

func expectedAuthorizationFor(service, path string, headers map[string]string, creds aws.Credentials, region string, now time.Time) string {
	amzDate := now.UTC().Format("20060102T150405Z")
	day := amzDate[:8]
	names := []string{}
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var canon strings.Builder
	for _, k := range names {
		canon.WriteString(k + ":" + headers[k] + "\n")
	}
	signed := strings.Join(names, ";")
	canonicalRequest := strings.Join([]string{"GET", path, "", canon.String(), signed, emptyPayloadHash}, "\n")
	sum := sha256.Sum256([]byte(canonicalRequest))
	scope := day + "/" + region + "/" + service + "/aws4_request"
	stringToSign := strings.Join([]string{"AWS4-HMAC-SHA256", amzDate, scope, hex.EncodeToString(sum[:])}, "\n")
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+creds.SecretAccessKey), day), region), service), "aws4_request")
	sig := hex.EncodeToString(mac(key, stringToSign))
	return "AWS4-HMAC-SHA256 Credential=" + creds.AccessKeyID + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + sig
}

// The reference computation reproduces AWS's published SigV4 test vector "get-vanilla"
// (aws-sig-v4-test-suite): GET / on example.amazonaws.com, service "service", us-east-1,
// 20150830T123600Z.
func TestExpectedAuthorizationKnownVector(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	got := expectedAuthorizationFor("service", "/", map[string]string{"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}, creds, "us-east-1", now)
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, " +
		"Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	if got != want {
		t.Errorf("get-vanilla:\n got %s\nwant %s", got, want)
	}
}

func TestSignHandshake(t *testing.T) {
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	const region = "eu-west-1"
	const host = "db-neptune-1.cluster-abc123.eu-west-1.neptune.amazonaws.com:8182"
	tests := []struct {
		name  string
		creds aws.Credentials
		want  []string // header names, sorted
	}{
		{"session credentials", aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "FQoGZXIvYXdzEXAMPLETOKEN"},
			[]string{"Authorization", "Host", "X-Amz-Date", "X-Amz-Security-Token"}},
		{"long-term credentials", aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
			[]string{"Authorization", "Host", "X-Amz-Date"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sign := func() *http.Request {
				req, err := http.NewRequest(http.MethodGet, "https://"+host+"/gremlin", nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := SignHandshake(req, tt.creds, region, now); err != nil {
					t.Fatal(err)
				}
				return req
			}
			req := sign()
			var got []string
			for k := range req.Header {
				got = append(got, k)
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("headers %v, want %v", got, tt.want)
			}
			if h := req.Header.Get("Host"); h != host {
				t.Errorf("Host %q, want %q", h, host)
			}
			if d := req.Header.Get("X-Amz-Date"); d != "20250314T150926Z" {
				t.Errorf("X-Amz-Date %q", d)
			}
			if tt.creds.SessionToken != "" && req.Header.Get("X-Amz-Security-Token") != tt.creds.SessionToken {
				t.Errorf("X-Amz-Security-Token %q", req.Header.Get("X-Amz-Security-Token"))
			}
			signedHeaders := map[string]string{"host": host, "x-amz-date": "20250314T150926Z"}
			if tt.creds.SessionToken != "" {
				signedHeaders["x-amz-security-token"] = tt.creds.SessionToken
			}
			want := expectedAuthorization(host, "/gremlin", signedHeaders, tt.creds, region, now)
			auth := req.Header.Get("Authorization")
			if auth != want {
				t.Errorf("Authorization\n got %s\nwant %s", auth, want)
			}
			if !strings.Contains(auth, "Credential=AKIDEXAMPLE/20250314/eu-west-1/neptune-db/aws4_request,") {
				t.Errorf("credential scope: %s", auth)
			}
			if again := sign().Header.Get("Authorization"); again != auth {
				t.Errorf("not stable: %s vs %s", again, auth)
			}
		})
	}
}

func TestSignHandshakeDefaultPort(t *testing.T) {
	// An explicit default port is not signed (the SDK drops it), and the Host sent must match.
	req, _ := http.NewRequest(http.MethodGet, "https://neptune.example:443/gremlin", nil)
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := SignHandshake(req, creds, "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	if h := req.Header.Get("Host"); h != "neptune.example" {
		t.Errorf("Host %q", h)
	}
	want := expectedAuthorization("neptune.example", "/gremlin", map[string]string{"host": "neptune.example", "x-amz-date": "20250102T030405Z"}, creds, "us-east-1", now)
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization\n got %s\nwant %s", got, want)
	}
}

func TestSignHandshakeErrors(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://h:8182/gremlin", nil)
	if err := SignHandshake(req, aws.Credentials{}, "us-east-1", time.Now()); err == nil {
		t.Error("no credentials: want an error")
	}
	if err := SignHandshake(req, aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"}, "", time.Now()); err == nil {
		t.Error("no region: want an error")
	}
}
