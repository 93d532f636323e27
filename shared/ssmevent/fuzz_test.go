package ssmevent

import (
	"encoding/json"
	"testing"
)

// FuzzDecode: Decode and DecodeSQS never panic, every error is permanent, and a decoded change
// has its dedup key, name and operation. `go test` runs the seeds only; fuzz with
// go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 15s -fuzzminimizetime 1s ./shared/ssmevent/
func FuzzDecode(f *testing.F) {
	for _, n := range sampleNames(f) {
		b := sample(f, n)
		f.Add(b)
		q, _ := json.Marshal(string(b))
		f.Add(q)
	}
	f.Add([]byte(`{"Type":"Notification","Message":"\"{}\""}`))
	f.Add([]byte(`{"id":"x","detail-type":"Parameter Store Change","source":"aws.ssm","time":"2017-05-22T16:43:48Z","detail":{"name":"/a","operation":"Create"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body)
		if err != nil {
			if !isPermanent(err) {
				t.Fatalf("non-permanent error %v", err)
			}
		} else {
			if ev.ID == "" || ev.DetailType == "" || ev.Source == "" {
				t.Fatalf("event without envelope: %+v", ev)
			}
			if ev.Ignored == nil && (ev.Name == "" || ev.Operation == "" || ev.Source != SourceSSM || ev.DetailType != DetailTypeChange) {
				t.Fatalf("change without name/operation: %+v", ev)
			}
			_ = Classify(ev.Name, "/karma")
		}
		recs, err := DecodeSQS(body)
		if err != nil && !isPermanent(err) {
			t.Fatalf("DecodeSQS: non-permanent error %v", err)
		}
		for _, r := range recs {
			if r.Err != nil && !isPermanent(r.Err) {
				t.Fatalf("record: non-permanent error %v", r.Err)
			}
		}
	})
}
