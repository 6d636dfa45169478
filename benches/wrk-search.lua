-- Load for `wrk` against /v1/search (see README, "Measuring"). Rotates through the questions of
-- the file WRK_QUESTIONS (one per line, JSON-escaped), else through six seed questions.
-- WRK_KEY: hikitsugi's API key; WRK_ORG: send an `X-Org` header instead (the Python peer).
local questions = {
  "山梨県は伴走支援をどんな体制で受け入れた？",
  "オンラインよろず相談はどのように実施されましたか",
  "宮崎県の共同調達・共同利用の目標は？",
  "市町DX支援パッケージの研修メニュー",
  "地域社会DX推進に必要なスキルセット",
  "北海道の連携地域はどこですか",
}
local file = os.getenv("WRK_QUESTIONS")
if file then
  questions = {}
  for line in io.lines(file) do
    questions[#questions + 1] = line
  end
end
local path = os.getenv("WRK_PATH") or "/v1/search"
local field = path == "/v1/ask" and "question" or "query"
local headers = { ["Content-Type"] = "application/json" }
local org = os.getenv("WRK_ORG")
if org then
  headers["X-Org"] = org
else
  headers["Authorization"] = "Bearer " .. (os.getenv("WRK_KEY") or "demo-wakayama-key")
end
local counter = 0
request = function()
  counter = counter + 1
  local q = questions[(counter % #questions) + 1]
  local body = string.format('{"%s": "%s", "top_k": 5}', field, q)
  return wrk.format("POST", path, headers, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "requests %d, errors %d, req/s %.1f, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n",
    summary.requests, errors, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
