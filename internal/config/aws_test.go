package config

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/internal/cli"
)

// TestThrottlesSeenOnHeads: S3 says SlowDown to a HEAD by a 503 alone
// (a HEAD's answer has no body to carry the code); the throttle listener
// hears it as it hears a SlowDown with a body, and the SDK retries both.
func TestThrottlesSeenOnHeads(t *testing.T) {
	var calls atomic.Int32
	var agent atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.Header.Get("User-Agent"))
		if calls.Add(1)%2 == 1 { // every first attempt is refused
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			if r.Method != http.MethodHead {
				w.Write([]byte(`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
			}
			return
		}
		w.Header().Set("Content-Length", "0")
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/xml")
			w.Write([]byte(`<Tagging><TagSet></TagSet></Tagging>`))
		}
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	var throttles atomic.Int32
	a := &AWS{Region: "us-east-1", S3Endpoint: srv.URL, OnThrottle: func() { throttles.Add(1) }}
	cfg, err := a.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	client := a.S3(cfg)
	ctx := context.Background()
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if _, err := client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
		t.Fatalf("GetObjectTagging: %v", err)
	}
	if n := throttles.Load(); n != 2 {
		t.Fatalf("%d throttles heard, want 2 (the HEAD's bare 503 and the GET's SlowDown)", n)
	}
	// Every request names s3clone and its version to S3's logs.
	if ua := agent.Load().(string); !strings.Contains(ua, "app/s3clone") || !strings.Contains(ua, "s3clone/"+userAgentVersion()) {
		t.Fatalf("User-Agent %q names neither the app nor its version", ua)
	}
}

// TestProfile: --profile picks a named profile from the AWS files, as the
// aws CLI's does; one that does not exist is bad usage.
func TestProfile(t *testing.T) {
	dir := t.TempDir()
	conf, creds := dir+"/config", dir+"/credentials"
	if err := os.WriteFile(conf, []byte("[profile clone]\nregion = eu-north-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, []byte("[clone]\naws_access_key_id = AKIDCLONE\naws_secret_access_key = secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", conf)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(v, "")
	}
	a := &AWS{Profile: "clone"}
	cfg, err := a.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || cfg.Region != "eu-north-1" || got.AccessKeyID != "AKIDCLONE" {
		t.Fatalf("profile clone: region %q, key %q (%v)", cfg.Region, got.AccessKeyID, err)
	}
	_, err = (&AWS{Profile: "nosuch"}).Load(context.Background())
	var usage *cli.UsageError
	if !errors.As(err, &usage) {
		t.Fatalf("a missing profile: %v, want a usage error", err)
	}
}
