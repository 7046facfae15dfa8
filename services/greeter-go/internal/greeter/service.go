package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	greeterv1 "acme.example/protos/acme/greeter/v1"

	"acme.example/common/rpcerr"
	"acme.example/common/server"
	"acme.example/common/settings"
)

// Service implements acme.greeter.v1.GreeterService (the twin of service.py).
type Service struct {
	greeterv1.UnimplementedGreeterServiceServer
	Instance       string
	MaxStreamNames int
}

// Build is Greeter's wiring, as server.Main hosts it (Main).
func Build(s *settings.Settings, own *Settings) []server.Service {
	service := &Service{Instance: s.InstanceName, MaxStreamNames: own.MaxStreamNames}
	return []server.Service{{
		Name: greeterv1.GreeterService_ServiceDesc.ServiceName,
		Register: func(r grpc.ServiceRegistrar) {
			greeterv1.RegisterGreeterServiceServer(r, service)
		},
	}}
}

// SayHello greets one person once.
func (s *Service) SayHello(_ context.Context, req *greeterv1.SayHelloRequest) (*greeterv1.SayHelloResponse, error) {
	message, err := Greet(req.GetName(), req.GetLanguage())
	if err != nil {
		return nil, err
	}
	return &greeterv1.SayHelloResponse{Message: message, ServedBy: s.Instance}, nil
}

// SayHelloLanguages greets one person in several languages, one message per language.
func (s *Service) SayHelloLanguages(req *greeterv1.SayHelloLanguagesRequest, stream grpc.ServerStreamingServer[greeterv1.SayHelloLanguagesResponse]) error {
	greetings, err := GreetInLanguages(req.GetName(), req.GetLanguages())
	if err != nil {
		return err
	}
	for _, g := range greetings {
		if err := stream.Send(&greeterv1.SayHelloLanguagesResponse{Language: g.Language, Message: g.Message}); err != nil {
			return err
		}
	}
	return nil
}

// GreetMany reads a stream of names and answers with one greeting for all of them.
func (s *Service) GreetMany(stream grpc.ClientStreamingServer[greeterv1.GreetManyRequest, greeterv1.GreetManyResponse]) error {
	var names []string
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := s.checkStreamLength(len(names)); err != nil {
			return err
		}
		names = append(names, CleanName(req.GetName()))
	}
	message, err := GreetEveryone(names)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&greeterv1.GreetManyResponse{Message: message, Count: int32(len(names))}) //nolint:gosec // at most MaxStreamNames
}

// Chat answers every incoming name with a greeting as soon as it arrives.
func (s *Service) Chat(stream grpc.BidiStreamingServer[greeterv1.ChatRequest, greeterv1.ChatResponse]) error {
	sequence := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.checkStreamLength(sequence); err != nil {
			return err
		}
		sequence++
		message, err := Greet(req.GetName(), "")
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterv1.ChatResponse{Message: message, Sequence: int32(sequence)}); err != nil { //nolint:gosec // at most MaxStreamNames
			return err
		}
	}
}

// checkStreamLength: how many names a stream may carry is a server setting
// (GREETER_MAX_STREAM_NAMES), so not a rule of the contract.
func (s *Service) checkStreamLength(received int) error {
	if received >= s.MaxStreamNames {
		return rpcerr.ResourceExhausted(fmt.Sprintf("a stream may carry at most %d names", s.MaxStreamNames))
	}
	return nil
}
