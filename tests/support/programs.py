"""Known-good solutions to LiveCodeBench problems of ../shared/data, shared by the verifier and eval tests."""

SECOND_LARGEST = "n = int(input())\na = list(map(int, input().split()))\nprint(a.index(sorted(a)[-2]) + 1)\n"
SHORTEST_PATHS = '''
class Solution:
    def shortestDistanceAfterQueries(self, n: int, queries: List[List[int]]) -> List[int]:
        graph = [[i + 1] for i in range(n - 1)] + [[]]
        out = []
        for u, v in queries:
            graph[u].append(v)
            dist = [-1] * n
            dist[0] = 0
            queue = deque([0])
            while queue:
                x = queue.popleft()
                for y in graph[x]:
                    if dist[y] < 0:
                        dist[y] = dist[x] + 1
                        queue.append(y)
            out.append(dist[n - 1])
        return out
'''
