// Starts the local-aws-sqs emulator on a loopback address for s3clone's tests and demo.
// Usage: node server.mjs [port]   (port 0 picks a free one)
// Prints one line "listening http://127.0.0.1:PORT" once it accepts requests.
//
// The emulator holds a long poll asking for up to N messages until N are there or the wait ends;
// SQS answers as soon as one is there. So requests go through a thin shim that gives SQS's
// answer: a ReceiveMessage for N > 1 with a wait first asks without waiting; if that finds
// nothing, it waits for one message; then it tops up without waiting. Every other request
// passes through as it is.
import http from "node:http";
import { createSqsServer } from "local-aws-sqs";

const port = Number(process.argv[2] ?? 9324);
const emulator = await createSqsServer({
  port: 0,
  hostname: "127.0.0.1",
  emulateQueueCreationLifecycle: false,
});
const inner = `http://127.0.0.1:${emulator.address().port}`;

// forward sends a request to the emulator and reads its whole answer. (Queue URLs the emulator
// writes name its own port; s3clone sends every request to the endpoint it is given, this one.)
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
function forward(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const h = { ...headers, "content-length": String(body.length) };
    delete h["transfer-encoding"];
    const req = http.request(inner + url, { method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

// receive gives a ReceiveMessage SQS's answer (see the top of this file).
async function receive(method, url, headers, body) {
  const ask = JSON.parse(body.toString("utf8"));
  const want = Number(ask.MaxNumberOfMessages ?? 1);
  const wait = Number(ask.WaitTimeSeconds ?? 0);
  if (want <= 1 || wait <= 0) return forward(method, url, headers, body);
  const json = (o) => Buffer.from(JSON.stringify(o));
  // An answer's messages (an empty 200 has none); null for an error, passed on as it is.
  const parsed = (r) => (r.body.length > 0 ? JSON.parse(r.body.toString("utf8")) : {});
  const messages = (r) => (r.status === 200 ? parsed(r).Messages ?? [] : null);

  const now = await forward(method, url, headers, json({ ...ask, WaitTimeSeconds: 0 }));
  const got = messages(now);
  if (got === null || got.length > 0) return now;
  const first = await forward(method, url, headers, json({ ...ask, MaxNumberOfMessages: 1 }));
  const one = messages(first);
  if (one === null || one.length === 0) return first;
  // The message in hand is the caller's whatever happens to the top-up: a failed top-up
  // returns it alone rather than lose it to its visibility timeout.
  let rest = [];
  try {
    const more = await forward(method, url, headers, json({ ...ask, MaxNumberOfMessages: want - 1, WaitTimeSeconds: 0 }));
    rest = messages(more) ?? [];
  } catch {
    rest = [];
  }
  return { ...first, body: json({ ...parsed(first), Messages: one.concat(rest) }) };
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const body = Buffer.concat(chunks);
    try {
      const target = req.headers["x-amz-target"] ?? "";
      const r = target.endsWith(".ReceiveMessage")
        ? await receive(req.method, req.url, req.headers, body)
        : await forward(req.method, req.url, req.headers, body);
      const headers = { ...r.headers, "content-length": String(r.body.length) };
      delete headers["transfer-encoding"];
      delete headers["content-encoding"];
      delete headers["connection"];
      delete headers["keep-alive"];
      res.writeHead(r.status, headers);
      res.end(r.body);
    } catch (err) {
      res.writeHead(500, { "content-type": "application/x-amz-json-1.0" });
      res.end(JSON.stringify({ __type: "InternalFailure", message: String(err) }));
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});

const stop = () => server.close(() => emulator.close(() => process.exit(0)));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
