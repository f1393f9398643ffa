// Command hello stands for the Lifeboat binary in the image build tests.
package main

import "fmt"

func main() { fmt.Println("hello") }
