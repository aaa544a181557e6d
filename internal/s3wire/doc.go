// Package s3wire holds the few places where s3clone leaves the AWS SDK for
// Go v2 on purpose and reads or writes S3's HTTP answers itself: a reader of
// ListObjectsV2 pages (FastDecode), a reader of the order of a
// ListObjectVersions page (RecordOrder), and a CopyObject sent as one
// hand-built request (Copier). It imports nothing of s3clone's: what to do
// with a page or a copy is the listing's and the copier's business
// (copier.Direct decides when to copy directly and when to hand over).
//
// # When and why
//
// Only where a measure showed the SDK's generic machinery to be most of the
// cost of the hottest call, or where the SDK's result loses something S3
// said (docs/performance.md, "Where the client CPU went"):
//
//   - Listing pages: the SDK's deserializer reads a page through
//     encoding/xml token by token, about 20 µs a key, more than half a
//     planner's CPU. BenchmarkDecodePage reads a 1,000-key page in 21 ms
//     through the SDK and in 4 ms with FastDecode; planning 10,000 keys went
//     from 0.41 to 0.22 s of CPU.
//   - Copies: the SDK's pipeline spends about 500 allocations per
//     CopyObject (the middleware stack, endpoint rules run per call, the
//     signer's copies of the headers, two passes of encoding/xml over a
//     200-byte answer). BenchmarkClientCPUPerCopy (copier package; 32 copies
//     in flight against a loopback server in another process) measured 225
//     µs of client CPU and 511 allocations per copy through the SDK, 67 µs
//     and 105 allocations direct; on another machine, with the SDK's own v4
//     signer that Copier uses now, 77 µs and 511 allocations through the SDK,
//     31–41 µs and 141 direct. On a small-object clone the client's CPU per
//     copy decides how many copies a machine can drive (--sdk-copies turns
//     the direct path off: about 2.5× the client CPU per copy).
//   - Versions: not for speed. The SDK parses a ListObjectVersions page into
//     two lists, versions and delete markers, and loses their interleaved
//     order, which an as-of listing needs to tell what a key held at a time.
//     RecordOrder reads the order beside the SDK, which still reads the page.
//
// # What stays the SDK's
//
// Each piece does less than the SDK, not something else: it takes the
// common case and hands anything it does not expect to the SDK, bytes
// unchanged, so the SDK stays the one authority on errors and retries.
//   - The HTTP client (the client's own pool), the credentials provider
//     (and its cache and refresh), the v4 signer (aws/signer/v4; an earlier
//     hand-written signer, byte-equal, saved a few µs and was dropped:
//     signing is security code the SDK maintains), the endpoint rules
//     (EndpointResolverV2, run once per bucket), the path escaper and joiner
//     (httpbinding.EscapePath, smithyhttp.JoinPath), date parsing
//     (smithy-go/time) and the retryer's list of throttling codes.
//   - The SDK's deserializers, for every answer but a clean 200 (an error
//     status, a body cut short, markup S3 does not send): FastDecode and
//     RecordOrder swap in a deserializer that reads the body whole and,
//     unless it read the result itself, hands the same bytes to the SDK's
//     (readFirst). Errors, retries, clock
//     skew correction and backoff are the SDK's: Copier makes one attempt
//     and reports an error for anything but a clean answer; the caller sends
//     the copy again through the SDK (copier.Direct).
//
// Tests hold each piece to the SDK: the same answers read both ways give
// equal results or equal errors (TestFastDecodeMatchesTheSDK, with a test
// that fails when an SDK upgrade adds a field the reader does not know), and
// the same copies sent both ways give the same URL, headers and signed
// scope over the endpoint set-ups an operator can choose
// (TestCopierSendsWhatTheSDKSends).
//
// Not here: a bucket's region is found with the SDK's HeadBucket
// (config.Regions); see regions.go for why not the SDK's
// manager.GetBucketRegion.
package s3wire
