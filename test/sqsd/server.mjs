// Starts the local-aws-sqs emulator on a loopback address for s3clone's tests and demo.
// Usage: node server.mjs [port]   (port 0 picks a free one)
// Prints one line "listening http://127.0.0.1:PORT" once it accepts requests.
//
// The emulator holds a long poll asking for up to N messages until N are there or the wait ends;
// SQS answers as soon as one is there. So requests go through a thin shim that gives SQS's
// answer: a ReceiveMessage for N > 1 with a wait first asks without waiting; if that finds
// nothing, it waits for one message; then it tops up without waiting. SendMessage and
// SendMessageBatch are held to SQS's character rule, which the emulator does not check: a message
// body holding a character outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
// #x10000-#x10FFFF is refused with InvalidMessageContents (the SendMessage API reference), in a
// batch per entry. Every other request passes through as it is.
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

// sqsChars reports a message body SQS accepts.
function sqsChars(body) {
  for (const ch of body ?? "") {
    const c = ch.codePointAt(0);
    const ok = c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
    if (!ok) return false;
  }
  return true;
}

const invalidContents =
  "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF";
const jsonAnswer = (status, o) => ({
  status,
  headers: { "content-type": "application/x-amz-json-1.0" },
  body: Buffer.from(JSON.stringify(o)),
});

// send holds SendMessage and SendMessageBatch to SQS's character rule.
async function send(batch, method, url, headers, body) {
  const ask = JSON.parse(body.toString("utf8"));
  if (!batch) {
    if (sqsChars(ask.MessageBody)) return forward(method, url, headers, body);
    return jsonAnswer(400, { __type: "com.amazonaws.sqs#InvalidMessageContents", message: invalidContents });
  }
  const entries = ask.Entries ?? [];
  const good = entries.filter((e) => sqsChars(e.MessageBody));
  if (good.length === entries.length) return forward(method, url, headers, body);
  const failed = entries
    .filter((e) => !sqsChars(e.MessageBody))
    .map((e) => ({ Id: e.Id, SenderFault: true, Code: "InvalidMessageContents", Message: invalidContents }));
  if (good.length === 0) return jsonAnswer(200, { Successful: [], Failed: failed });
  const r = await forward(method, url, headers, Buffer.from(JSON.stringify({ ...ask, Entries: good })));
  if (r.status !== 200) return r;
  const answer = JSON.parse(r.body.toString("utf8"));
  return { ...r, body: Buffer.from(JSON.stringify({ ...answer, Failed: (answer.Failed ?? []).concat(failed) })) };
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
        : target.endsWith(".SendMessage") || target.endsWith(".SendMessageBatch")
          ? await send(target.endsWith(".SendMessageBatch"), req.method, req.url, req.headers, body)
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
