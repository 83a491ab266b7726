wrk.method = "POST"
wrk.body = io.open("/tmp/rsst/b.json"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-m"
