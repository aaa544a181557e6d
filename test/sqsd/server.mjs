// Starts the local-aws-sqs emulator on a loopback address for s3clone's tests and demo.
// Usage: node server.mjs [port]   (port 0 picks a free one)
// Prints one line "listening http://127.0.0.1:PORT" once it accepts requests.
import { createSqsServer } from "local-aws-sqs";

const port = Number(process.argv[2] ?? 9324);
const server = await createSqsServer({
  port,
  hostname: "127.0.0.1",
  emulateQueueCreationLifecycle: false,
});
const addr = server.address();
console.log(`listening http://127.0.0.1:${addr.port}`);

const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
