# A small image running the server as a non-root user. It needs DATABASE_URL
# (the local development cluster is not part of the image).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags="-s -w" -o /out/server ./server

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/server /server
ENV PORT=8080 DATA_DIR=/tmp/narrate
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/server"]
CMD ["serve"]
