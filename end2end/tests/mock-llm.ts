import * as http from "node:http";
import { AddressInfo } from "node:net";

/** A mock OpenAI-compatible server (LM Studio's wire format): `/v1/models` lists one model and
 * `/v1/chat/completions` streams `head`, then each of `words` (plus a space) every `everyMs`
 * (a number, or the wait before word `i`).
 * The stream ends with OpenAI's usage chunk, whose `cached_tokens` is the share of the prompt
 * that repeats the previous prompt's start. A client that disconnects stops the stream. */
export interface MockLlm {
  base: string;
  /** How many chat requests arrived. */
  requests: () => number;
  /** The chat requests' bodies, in order. */
  bodies: () => string[];
  close: () => Promise<void>;
}

function chunk(delta: object, finish: string | null = null) {
  const c = {
    id: "chatcmpl-e2e", object: "chat.completion.chunk", created: 1700000000, model: "mock",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return `data: ${JSON.stringify(c)}\n\n`;
}

export async function startMockLlm(head: string, words: string[], everyMs: number | ((i: number) => number)): Promise<MockLlm> {
  const wait = typeof everyMs === "number" ? () => everyMs : everyMs;
  let requests = 0;
  let lastPrompt = "";
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.url?.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "mock", object: "model", owned_by: "library" }] }));
      return;
    }
    requests++;
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8");
      bodies.push(body);
      // Like a server with a prompt cache: the part of this prompt that repeats the previous
      // one's start is "cached" (counted in characters / 4, as tokens).
      let prompt = "";
      try {
        prompt = JSON.stringify(JSON.parse(body).messages ?? []);
      } catch {}
      let same = 0;
      while (same < prompt.length && same < lastPrompt.length && prompt[same] === lastPrompt[same]) same++;
      lastPrompt = prompt;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      let closed = false;
      res.on("close", () => (closed = true));
      res.write(chunk({ role: "assistant", content: "" }));
      res.write(chunk({ content: head }));
      for (const [i, w] of words.entries()) {
        if (closed) return;
        await new Promise((r) => setTimeout(r, wait(i)));
        res.write(chunk({ content: `${w} ` }));
      }
      if (closed) return;
      res.write(chunk({}, "stop"));
      const usage = {
        prompt_tokens: Math.ceil(prompt.length / 4), completion_tokens: words.length + 1,
        prompt_tokens_details: { cached_tokens: Math.floor(same / 4) },
      };
      res.write(`data: ${JSON.stringify({ id: "chatcmpl-e2e", object: "chat.completion.chunk", choices: [], usage })}\n\n`);
      res.write("data: [DONE]\n\n");
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests: () => requests,
    bodies: () => [...bodies],
    close: () => new Promise((r) => server.close(() => r())),
  };
}
