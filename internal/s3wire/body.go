package s3wire

import (
	"bytes"
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// reader reads a successful answer's body before the SDK does. It returns
// the result to answer with instead of the SDK's, or nil to have the SDK
// read the same bytes; and note, if not nil, which marks the metadata of
// whichever result is returned (the SDK's only when it read without error).
type reader func(resp *smithyhttp.Response, body []byte) (result any, note func(*middleware.Metadata))

// readFirst is a per-call option that swaps operation op's deserializer for
// one that reads a 200 answer's body whole and gives it to read first. An
// error status, a transport fault or a body that fails part-way goes to the
// SDK's deserializer exactly as it came (the same bytes, then the same read
// error), so errors, retries and odd answers behave as without the option.
func readFirst(op string, read reader) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			if stack.ID() != op {
				return nil
			}
			sdk, ok := stack.Deserialize.Get("OperationDeserializer")
			if !ok {
				return nil
			}
			_, err := stack.Deserialize.Swap("OperationDeserializer", &bodyFirst{sdk: sdk, read: read})
			return err
		})
	}
}

// bodyFirst is readFirst's deserializer.
type bodyFirst struct {
	sdk  middleware.DeserializeMiddleware
	read reader
}

func (*bodyFirst) ID() string { return "OperationDeserializer" }

func (m *bodyFirst) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode != 200 {
		return m.sdk.HandleDeserialize(ctx, in, replay{out, md, err})
	}
	body, readErr := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // read to the end (or to its error, kept for the SDK)
	var result any
	var note func(*middleware.Metadata)
	if readErr == nil {
		result, note = m.read(resp, body)
	}
	if result != nil {
		out.Result = result
		if note != nil {
			note(&md)
		}
		return out, md, nil
	}
	// The SDK reads the same bytes (and the same read error, if any).
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{readErr}))
	out, md, err = m.sdk.HandleDeserialize(ctx, in, replay{out, md, nil})
	if err == nil && note != nil {
		note(&md)
	}
	return out, md, err
}

// replay answers the SDK's deserializer with a response already received.
type replay struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (r replay) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return r.out, r.md, r.err
}

// errReader fails with err, or ends the body when err is nil.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}
