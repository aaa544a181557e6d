package copier

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/s3wire"
	"github.com/s3clone/s3clone/internal/s3wire/wiretest"
)

// isDirect tells Direct's requests from the SDK's.
func isDirect(req *http.Request) bool { return req.Header.Get("User-Agent") == s3wire.UserAgent }

// TestDirectSendsOwnersAsTheSDK: with a book of bucket owners and payers,
// a direct copy says what the client's requests say: the destination's
// owner, the source's, and that the requester pays.
func TestDirectSendsOwnersAsTheSDK(t *testing.T) {
	var book ownership.Book
	book.Set("source", ownership.Bucket{Owner: "111111111111", RequesterPays: true})
	book.Set("dest-bucket", ownership.Bucket{Owner: "222222222222"})
	via := &wiretest.Scripted{Answers: []wiretest.Answer{{Status: 200, Body: wiretest.CopyResult}}}
	client := wiretest.Client(via, func(o *s3.Options) { o.APIOptions = append(o.APIOptions, book.APIOption) })
	direct := NewDirect(client, nil)
	direct.Owners = &book
	in := func() *s3.CopyObjectInput {
		return &s3.CopyObjectInput{Bucket: aws.String("dest-bucket"), Key: aws.String("k"), CopySource: aws.String(EscapeCopySource("source", "k")),
			MetadataDirective: types.MetadataDirectiveCopy, TaggingDirective: types.TaggingDirectiveCopy}
	}
	if _, err := client.CopyObject(context.Background(), in()); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.CopyObject(context.Background(), in()); err != nil {
		t.Fatal(err)
	}
	sdkReq, directReq := via.Reqs[0], via.Reqs[1]
	if !isDirect(directReq) || directReq.Header.Get("X-Amz-Request-Payer") != "requester" || directReq.Header.Get("X-Amz-Source-Expected-Bucket-Owner") != "111111111111" {
		t.Fatalf("direct request headers %v", directReq.Header)
	}
	// s3wire's differential test shows the fields make the SDK's headers.
	for _, h := range []string{"X-Amz-Expected-Bucket-Owner", "X-Amz-Source-Expected-Bucket-Owner", "X-Amz-Request-Payer"} {
		if got, want := directReq.Header.Values(h), sdkReq.Header.Values(h); !slices.Equal(got, want) {
			t.Errorf("%s %q, SDK's %q", h, got, want)
		}
	}
	// Without a book, nothing is said.
	plain := NewDirect(wiretest.Client(via, func(*s3.Options) {}), nil)
	if _, err := plain.CopyObject(context.Background(), in()); err != nil {
		t.Fatal(err)
	}
	last := via.Reqs[len(via.Reqs)-1]
	if !isDirect(last) || last.Header.Get("X-Amz-Expected-Bucket-Owner") != "" || last.Header.Get("X-Amz-Request-Payer") != "" {
		t.Errorf("copy without a book sent %v", last.Header)
	}
}

// TestDirectHandsTheUnusualToTheSDK: inputs Direct does not encode, per-call
// options and endpoints it cannot sign for go through the SDK untouched.
func TestDirectHandsTheUnusualToTheSDK(t *testing.T) {
	via := &wiretest.Scripted{Answers: []wiretest.Answer{{Status: 200, Body: wiretest.CopyResult}}}
	direct := NewDirect(wiretest.Client(via, func(*s3.Options) {}), nil)
	base := func() *s3.CopyObjectInput {
		return &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k")}
	}
	withMetadata := base()
	withMetadata.MetadataDirective = types.MetadataDirectiveReplace
	withMetadata.Metadata = map[string]string{"a": "b"}
	withOwner := base()
	withOwner.ExpectedBucketOwner = aws.String("111122223333")
	mrap := base()
	mrap.Bucket = aws.String("arn:aws:s3::111122223333:accesspoint/mfzwi23gnjvgw.mrap")
	for _, c := range []struct {
		name string
		in   *s3.CopyObjectInput
		opts []func(*s3.Options)
	}{
		{"metadata", withMetadata, nil},
		{"expected owner", withOwner, nil},
		{"per-call option", base(), []func(*s3.Options){func(o *s3.Options) { o.Region = "eu-west-1" }}},
		{"multi-region point", mrap, nil},
	} {
		name := c.name
		before := len(via.Reqs)
		_, err := direct.CopyObject(context.Background(), c.in, c.opts...)
		if name == "multi-region point" {
			// SigV4A needs the CRT signer in the SDK too; what matters is that
			// Direct did not sign it with SigV4.
			if len(via.Reqs) > before {
				if auth := via.Reqs[len(via.Reqs)-1].Header.Get("Authorization"); strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
					t.Errorf("%s: signed with SigV4: %s", name, auth)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(via.Reqs) != before+1 {
			t.Errorf("%s: %d requests, want 1", name, len(via.Reqs)-before)
		}
	}
	anonymous := NewDirect(wiretest.Client(via, func(o *s3.Options) { o.Credentials = aws.AnonymousCredentials{} }), nil)
	if _, err := anonymous.CopyObject(context.Background(), base()); err != nil {
		t.Fatalf("anonymous: %v", err)
	}
	if auth := via.Reqs[len(via.Reqs)-1].Header.Get("Authorization"); auth != "" {
		t.Errorf("anonymous copy signed: %s", auth)
	}
	if direct.Sent() != 0 || anonymous.Sent() != 0 {
		t.Errorf("%d and %d sent directly, want none", direct.Sent(), anonymous.Sent())
	}
	if got := via.Reqs[0].Header.Get("X-Amz-Meta-A"); got != "b" {
		t.Errorf("the SDK's request lost the metadata: X-Amz-Meta-A %q", got)
	}
}

// TestDirectFallsBackToTheSDK scripts the answers a real server cannot be
// made to give on cue: throttles, a 200 that carries an error, a dropped
// connection, a refusal. Each direct attempt that is not a clean success is
// sent again through the SDK, whose answer is final.
func TestDirectFallsBackToTheSDK(t *testing.T) {
	in := func() *s3.CopyObjectInput {
		return &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k"),
			CopySourceIfMatch: aws.String(`"e"`), MetadataDirective: types.MetadataDirectiveCopy}
	}
	ok := wiretest.Answer{Status: 200, Body: wiretest.CopyResult}
	for _, c := range []struct {
		name      string
		answers   []wiretest.Answer
		throttles int
		wantCode  string // "" for success
	}{
		{"success", []wiretest.Answer{ok}, 0, ""},
		{"slow down", []wiretest.Answer{{Status: 503, Body: wiretest.S3Error("SlowDown")}, ok}, 1, ""},
		{"too many requests", []wiretest.Answer{{Status: 429}, ok}, 1, ""},
		{"bare 503", []wiretest.Answer{{Status: 503}, ok}, 1, ""},
		{"service unavailable", []wiretest.Answer{{Status: 503, Body: wiretest.S3Error("ServiceUnavailable")}, ok}, 1, ""},
		{"200 with an error", []wiretest.Answer{{Status: 200, Body: "\n\n   " + wiretest.S3Error("InternalError")}, ok}, 0, ""},
		{"empty 200", []wiretest.Answer{{Status: 200}, ok}, 0, ""},
		{"dropped connection", []wiretest.Answer{{Err: io.ErrUnexpectedEOF}, ok}, 0, ""},
		{"precondition failed", []wiretest.Answer{{Status: 412, Body: wiretest.S3Error("PreconditionFailed")}}, 0, "PreconditionFailed"},
		{"no such key", []wiretest.Answer{{Status: 404, Body: wiretest.S3Error("NoSuchKey")}}, 0, "NoSuchKey"},
		{"access denied", []wiretest.Answer{{Status: 403, Body: wiretest.S3Error("AccessDenied")}}, 0, "AccessDenied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			via := &wiretest.Scripted{Answers: c.answers}
			throttles := 0
			direct := NewDirect(wiretest.Client(via, func(*s3.Options) {}), func() { throttles++ })
			out, err := direct.CopyObject(context.Background(), in())
			wantReqs, wantFallbacks := 2, int64(1)
			if c.name == "success" {
				wantReqs, wantFallbacks = 1, 0
			}
			if len(via.Reqs) != wantReqs || direct.FellBack() != wantFallbacks || direct.Sent() != 1 {
				t.Errorf("%d requests, %d sent directly, %d fell back; want %d, 1, %d", len(via.Reqs), direct.Sent(), direct.FellBack(), wantReqs, wantFallbacks)
			}
			if throttles != c.throttles {
				t.Errorf("%d throttles reported, want %d", throttles, c.throttles)
			}
			if c.wantCode == "" {
				if err != nil || out == nil || aws.ToString(out.CopyObjectResult.ETag) != `"9b2cf535f27731c974343645a3985328"` {
					t.Fatalf("got %v, %v; want the copy result", out, err)
				}
				return
			}
			if ce := Classify(err); ce == nil || ce.Code != c.wantCode {
				t.Fatalf("error %v, want code %s from the SDK", err, c.wantCode)
			}
		})
	}
}

// TestDirectGivesUp: when direct requests keep failing where the SDK's
// succeed (something on the way refuses them), Direct stops sending them,
// says so once, and every copy goes through the SDK alone.
func TestDirectGivesUp(t *testing.T) {
	via := &wiretest.Scripted{By: func(req *http.Request) wiretest.Answer {
		if isDirect(req) {
			return wiretest.Answer{Status: 400, Body: wiretest.S3Error("InvalidRequest")}
		}
		return wiretest.Answer{Status: 200, Body: wiretest.CopyResult}
	}}
	direct := NewDirect(wiretest.Client(via, func(*s3.Options) {}), nil)
	var told []error
	direct.OnGiveUp = func(err error) { told = append(told, err) }
	copyOnce := func() {
		t.Helper()
		if _, err := direct.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k")}); err != nil {
			t.Fatal(err)
		}
	}
	for range giveUpAfter + 20 {
		copyOnce()
	}
	if direct.Sent() != giveUpAfter || len(via.Reqs) != 2*giveUpAfter+20 {
		t.Errorf("%d sent directly, %d requests; want %d and %d", direct.Sent(), len(via.Reqs), giveUpAfter, 2*giveUpAfter+20)
	}
	if len(told) != 1 || !strings.Contains(told[0].Error(), "InvalidRequest") {
		t.Errorf("told %v, want the last direct error once", told)
	}

	// A direct success in between starts the count again.
	flaky := 0
	via = &wiretest.Scripted{By: func(req *http.Request) wiretest.Answer {
		if isDirect(req) {
			if flaky++; flaky%giveUpAfter == 0 {
				return wiretest.Answer{Status: 200, Body: wiretest.CopyResult}
			}
			return wiretest.Answer{Status: 500, Body: wiretest.S3Error("InternalError")}
		}
		return wiretest.Answer{Status: 200, Body: wiretest.CopyResult}
	}}
	direct = NewDirect(wiretest.Client(via, func(*s3.Options) {}), nil)
	for range 3 * giveUpAfter {
		copyOnce()
	}
	if direct.Sent() != 3*giveUpAfter {
		t.Errorf("%d of %d sent directly; a success every %d attempts must keep the path on", direct.Sent(), 3*giveUpAfter, giveUpAfter)
	}
}

// TestDirectStopsWhenCanceled: a canceled copy is not sent again.
func TestDirectStopsWhenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	via := &wiretest.Scripted{Answers: []wiretest.Answer{{Err: errors.New("connection reset")}}}
	client := wiretest.Client(via, func(*s3.Options) {})
	direct := NewDirect(client, nil)
	via.Answers[0].Err = context.Canceled
	cancel()
	_, err := direct.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if len(via.Reqs) > 1 || direct.FellBack() != 0 {
		t.Errorf("%d requests, %d fell back; a canceled copy must not be sent again", len(via.Reqs), direct.FellBack())
	}
	if ce := Classify(err); ce.Reason != ReasonCanceled {
		t.Errorf("classified %q, want %q", ce.Reason, ReasonCanceled)
	}
}

// recordingRetryer is the client's retryer, noting what it is asked to wait
// for and answering a fixed wait.
type recordingRetryer struct {
	aws.Retryer
	wait  time.Duration
	asked []error
}

func (r *recordingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	r.asked = append(r.asked, err)
	return r.wait, nil
}

// TestDirectBacksOffAsTheRetryerSays: after a throttled direct attempt,
// Direct waits what the client's retryer gives for a first throttle (which
// the retryer must recognise as one, bare 429 included) before the SDK's.
func TestDirectBacksOffAsTheRetryerSays(t *testing.T) {
	for _, first := range []wiretest.Answer{{Status: 503, Body: wiretest.S3Error("SlowDown")}, {Status: 429}, {Status: 503}} {
		via := &wiretest.Scripted{Answers: []wiretest.Answer{first, {Status: 200, Body: wiretest.CopyResult}}}
		r := &recordingRetryer{Retryer: aws.NopRetryer{}, wait: 40 * time.Millisecond}
		client := wiretest.Client(via, func(*s3.Options) {})
		direct := NewDirect(s3.New(client.Options(), func(o *s3.Options) { o.Retryer = r }), nil)
		start := time.Now()
		if _, err := direct.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k")}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < r.wait {
			t.Errorf("%d: the SDK's attempt went after %s, want at least the retryer's %s", first.Status, took, r.wait)
		}
		if len(r.asked) != 1 || retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(r.asked[0]) != aws.TrueTernary {
			t.Errorf("%d: retryer asked about %v, want one error it knows for a throttle", first.Status, r.asked)
		}
	}
}

// TestDirectLearnsTheServersClock: refused as too skewed, Direct signs the
// next copies by the server's clock (from its Date header), as the SDK does.
func TestDirectLearnsTheServersClock(t *testing.T) {
	ahead := time.Now().Add(time.Hour).UTC()
	via := &wiretest.Scripted{By: func(req *http.Request) wiretest.Answer {
		at, _ := time.Parse("20060102T150405Z", req.Header.Get("X-Amz-Date"))
		if isDirect(req) && at.Before(ahead.Add(-time.Minute)) {
			return wiretest.Answer{Status: 403, Body: wiretest.S3Error("RequestTimeTooSkewed"), Header: http.Header{"Date": {ahead.Format(http.TimeFormat)}}}
		}
		return wiretest.Answer{Status: 200, Body: wiretest.CopyResult}
	}}
	direct := NewDirect(wiretest.Client(via, func(*s3.Options) {}), nil)
	for range 3 {
		if _, err := direct.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k")}); err != nil {
			t.Fatal(err)
		}
	}
	if direct.Sent() != 3 || direct.FellBack() != 1 || len(via.Reqs) != 4 {
		t.Errorf("%d sent directly, %d fell back, %d requests; want 3, 1 (the first) and 4", direct.Sent(), direct.FellBack(), len(via.Reqs))
	}
}
